"""accelerate configs for the training steps' strategies: ddp, fsdp2, zero2, zero3 (YAML files beside this)."""
