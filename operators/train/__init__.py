"""Training: continued pretraining, SFT (lora, dora, qlora, full, hybrid), preference optimisation (DPO,
SimPO, ORPO) and merging, with trl + peft.

The flow side (no CUDA, no torch model):
- `launch.run_job(job, launch_options, on_log, on_event)`: write job.json, run
  `accelerate launch -m infuse.operators.train.worker job.json`, stream its log
  lines and events, return its result.json. `launch.launch(module_args, ...)`
  runs any module the same way. `launch.preflight(options)`: what would fail here.
- `config`: TrainOptions, LoraOptions, LaunchOptions (recipe sections) and Job.
- `templates`: named chat templates with generation markers; `resolve`, `install`.
- `card`: card.json, `check_template`, `fingerprint`, `base_of` and `root_base` (the base under an adapter).
- `tokenizer`: `base_with_tokenizer`, `base_with_template` (base weights, hard-linked, with a tuned tokenizer).
- `merge.merge_model(model_dir, out_dir, base_dir)`.
- `report`: the loss-curve and reward-curve PNGs, and the metrics rows.

The worker side (inside the subprocess):
- `worker`: the entry; `runner(kind)` maps a job kind to its function.
- `sft.train_sft(job)`, `cpt.train_cpt(job)`, `dpo.train_dpo(job)`: plain
  functions, one job each.
- `session.Session(job)`: device, dtype, attention, tokenizer + template, data
  prepared once and laid out in training order, trainer arguments, metrics,
  card and result.
- `trainer.InfuseTrainer` (SFTTrainer: logits only where the loss is taken),
  `EventCallback`, `StopAt`; `data`: masks, packing, order; `modeling`: loading,
  kernels, adapters.
"""
