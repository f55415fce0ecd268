"""Training, whatever the task: ``fitting`` (compile options, a network fit
with early stopping, a refit on every window), ``fit_parts`` (the optimizer
and early stopping), ``feed`` (the input pipeline), ``memory`` (what a long
search releases), ``stateful`` (state carried between windows) and
``curves`` (per-epoch metrics to MLflow)."""
