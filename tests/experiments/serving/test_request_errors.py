"""What a served model answers a bad request: the reader's message as a 400,
a failure of its own as a 500 that says nothing of the server, and a request
over the size limit refused before any work."""

import logging

import mlflow
import pandas as pd
import pytest

from experiments.serving.pyfunc import MAX_REQUEST_SERIES, RequestError, ServedModel


class Reader:
    """A forecaster that records whether it was asked, and fails as told."""

    def __init__(self, error):
        self.error, self.asked = error, False

    def forecast(self, network, history, steps=None):
        self.asked = True
        raise self.error


def served(error) -> ServedModel:
    model = ServedModel()
    model.kind, model.network, model.history = "forecast", None, None
    model.reader = Reader(error)
    return model


def test_a_readers_complaint_is_a_bad_request_in_its_own_words():
    with pytest.raises(RequestError) as err:
        served(ValueError("history is missing column 'y'")).predict(None, pd.DataFrame({"x": [1]}))
    assert str(err.value) == "history is missing column 'y'"
    assert err.value.get_http_status_code() == 400
    assert isinstance(err.value, ValueError)  # `lstm-zoo forecast` exits 2 on it


def test_a_failure_of_the_model_is_logged_here_and_answered_without_its_stack(caplog):
    model = served(RuntimeError("cannot open /srv/models/network.keras"))
    with caplog.at_level(logging.ERROR), pytest.raises(mlflow.exceptions.MlflowException) as err:
        model.predict(None, pd.DataFrame({"x": [1]}))
    answer = err.value.serialize_as_json()
    assert err.value.get_http_status_code() == 500
    assert "RuntimeError" in answer and "/srv/models" not in answer
    assert "stack_trace" not in answer
    assert "/srv/models/network.keras" in caplog.text  # the server's log keeps it


def test_a_request_over_the_limit_is_refused_before_any_work(monkeypatch):
    model = served(ValueError("unreachable"))
    ids = pd.DataFrame({"unique_id": range(MAX_REQUEST_SERIES + 1), "y": 1.0})
    with pytest.raises(RequestError, match=f"the request holds {MAX_REQUEST_SERIES + 1} "
                                           f"series .* at most {MAX_REQUEST_SERIES}"):
        model.predict(None, ids)
    monkeypatch.setenv("LSTM_ZOO_MAX_REQUEST_ROWS", "10")
    with pytest.raises(RequestError, match="holds 11 rows; one request may hold at most 10"):
        model.predict(None, ids.head(11))
    assert not model.reader.asked
