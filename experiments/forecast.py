"""The forecasting task: a series, windows, forecasts in original units."""

from __future__ import annotations

from experiments import metrics
from experiments.task import Split, Task


class ForecastTask(Task):
    """Direct multi-step forecasting of one or more columns of a series."""

    kind = "forecast"
    head = "regression"
    loss = "mse"
    rank_by = "test_rmse"
    metrics_shown = ("mae", "rmse", "mape", "smape", "mase")

    def __init__(self, prepared, repairs=()):
        self.prepared = p = prepared
        self.series = p.series
        self.name = p.series.name
        self.input_shape, self.outputs = p.input_shape, p.outputs
        self.train = Split(p.train.x, p.train.y)
        self.val = Split(p.val.x, p.val.y)
        self.test = Split(p.test.x, p.test.y)
        self.repairs = tuple(repairs)

    def params(self):
        p = self.prepared
        return {"targets": ",".join(self.series.targets),
                "features": ",".join(self.series.features),
                "window": p.window, "horizon": p.horizon,
                "n_train": p.n_train, "n_val": p.n_val, "n_test": p.n_test,
                "transforms": ",".join(p.transforms) or "none",
                "season": p.season}

    def dataset(self):
        from experiments.train import dataset_of

        return dataset_of(self.series)

    def baselines(self):
        return [("naive", "test_naive_"), ("seasonal naive", "test_seasonal_naive_")]

    def forecast(self, model, part):
        """Forecasts for ``part`` in original units, ``(n, horizon, targets)``."""
        if part is self.prepared.test:
            raw = self.predict_test(model)
        else:
            raw = model.predict(part.x, verbose=0, batch_size=1024)
        return self.prepared.to_original(raw, part.origins)

    def evaluate(self, model):
        p = self.prepared
        pred = self.forecast(model, p.test)
        scores = {f"test_{k}": v for k, v in
                  metrics.evaluate_forecasts(p, pred, p.test).items()}
        val = metrics.forecast_metrics(p.truth(p.val), self.forecast(model, p.val),
                                       metrics.scale_for(p))
        scores.update({f"val_{k}": v for k, v in val.items()})
        return scores

    def log_artifacts(self, model, scores):
        import mlflow

        from experiments import plots

        p = self.prepared
        pred = self.forecast(model, p.test)
        values = self.series.frame[list(self.series.targets)].to_numpy()
        baseline = metrics.seasonal_naive(values, p.test.origins, p.horizon, p.season)
        from experiments.tracking import redact

        title = f"{model.name} on {redact(self.name)}: test RMSE {scores['test_rmse']:.4g}"
        mlflow.log_figure(plots.forecast_plot(p, pred, baseline, p.test, title),
                          "plots/forecast.png")
        mlflow.set_tag("beats_seasonal_naive",
                       str(scores["test_skill_vs_seasonal_naive"] > 0))

    def config(self):
        p = self.prepared
        return {"scaler": {"mean": p.mean.to_dict(), "std": p.std.to_dict()},
                "transforms": list(p.transforms), "season": p.season}

    def fingerprint(self):
        return {**super().fingerprint(), "data_digest": self.dataset().digest}


