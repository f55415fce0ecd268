"""`lstm-zoo models`, `datasets` and `inspect`: what the zoo and the data hold."""

from __future__ import annotations

from experiments.cli.output import table


def cmd_models(args) -> int:
    if not args.params:
        # Read from the families' source: no Keras, no TensorFlow, no models.
        from experiments.catalog import catalogue

        rows = [(e.name, ",".join(e.heads), e.summary) for e in catalogue()]
        print(table([("model", "heads", ""), *rows]))
        print("\nParameter counts and example inputs: lstm-zoo models --params "
              "(builds each family, a few seconds).")
        return 0
    import zoo

    rows = []
    for name in zoo.list_models():
        info = zoo.get(name)
        shape, outputs = info.example_input
        model = zoo.build_model(name, shape, outputs)
        rows.append((name, f"{model.count_params():,}", str(shape),
                     ",".join(info.heads), info.summary))
    print(table([("model", "params", "input", "heads", ""), *rows]))
    print("\nParameter counts use the default hyperparameters; forecasters "
          "predict 12 steps, conv_lstm one frame.")
    return 0


def cmd_datasets(args) -> int:
    from experiments.tasks import list_datasets

    rows = [(name, task, doc) for name, (task, doc) in list_datasets().items()]
    print(table([("dataset", "task", "description"), *rows]))
    print("\nYour own data:\n"
          "  forecast        --csv PATH --target COL [--features COL ...] [--time-col COL]\n"
          "  frames          --npy PATH   (samples, time, rows, cols[, channels])\n"
          "  language model  --text PATH  (any UTF-8 text)\n"
          "  classification  --npz PATH (x, y)  or  --csv PATH --id-col COL "
          "--label-col COL [--time-col COL]")
    return 0


def cmd_inspect(args) -> int:
    import zoo

    model = zoo.load_model(args.path, compile=False, max_file_mb=args.max_file_mb)
    model.summary(print_fn=lambda line, **_: print(line))
    report = zoo.cudnn_report(model)
    if report:
        print("\ncuDNN (fused GPU kernels):")
        for status in report:
            print(f"  {status}")
    return 0
