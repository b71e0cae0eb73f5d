"""Training: continued pretraining, SFT (lora, dora, qlora, full, hybrid) and merging, with trl + peft.

The flow side (no CUDA, no torch model):
- `launch.run_job(job, launch_options, on_log, on_event)`: write job.json, run
  `accelerate launch -m infuse.operators.train.worker job.json`, stream its log
  lines and events, return its result.json. `launch.launch(module_args, ...)`
  runs any module the same way. `launch.preflight(options)`: what would fail here.
- `config`: TrainOptions, LoraOptions, LaunchOptions (recipe sections) and Job.
- `templates`: named chat templates with generation markers; `resolve`, `install`.
- `card`: card.json, `check_template`, `open_tokenizer`, `fingerprint`.
- `merge.merge_model(model_dir, out_dir, base_dir)`.
- `report`: the loss-curve PNG and metrics rows.

The worker side (inside the subprocess):
- `worker`: the entry; `runner(kind)` maps a job kind to its function.
- `sft.train_sft(job)`, `cpt.train_cpt(job)`: plain functions, one job each.
- `session.Session(job)`: device, dtype, attention, tokenizer + template, data
  prepared once, trainer arguments, metrics, card and result (dpo reuses it).
- `trainer.InfuseTrainer` (SFTTrainer: logits only where the loss is taken),
  `EventCallback`, `StopAt`; `data`: masks, packing, order; `modeling`: loading,
  kernels, adapters.
"""
