"""Registered model names: the default names the data, and never mixes two datasets."""

import mlflow
import pytest

from experiments import model_names, tracking

SALES = {"data_digest": "aaaa1111", "targets": "sales", "features": "sales"}


@pytest.fixture
def client(tmp_path):
    uri = tracking.init_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return mlflow.MlflowClient(uri)


def add_version(client, name, identity):
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    return client.create_model_version(name, "file:///nowhere", tags=identity)


def test_default_name_names_the_dataset_and_target():
    assert model_names.default_name("airline", "Passengers") == "lstm-zoo-airline-passengers"
    assert model_names.default_name("history", "sales,returns") == \
        "lstm-zoo-history-sales-returns"
    assert model_names.default_name("my data", None) == "lstm-zoo-my_data"


def test_a_default_name_holding_other_data_is_not_reused(client):
    name = "lstm-zoo-history-sales"
    assert model_names.choose(client, name, None, SALES) == model_names.Choice(name)
    add_version(client, name, SALES)
    # The same data again: a new version of the same model.
    assert model_names.choose(client, name, None, SALES).name == name
    # Another series saved as history.csv: its own name, and the reason.
    other = {**SALES, "data_digest": "bbbb2222"}
    choice = model_names.choose(client, name, None, other)
    assert choice.name == f"{name}-2"
    assert "bbbb2222" in choice.reason and "aaaa1111" in choice.reason
    assert "--model-name" in choice.reason
    add_version(client, f"{name}-2", other)
    # A third dataset skips both; the second one finds its own name again.
    third = {**SALES, "features": "sales,price"}
    assert model_names.choose(client, name, None, third).name == f"{name}-3"
    assert model_names.choose(client, name, None, other).name == f"{name}-2"


def test_a_name_the_user_gives_is_used_as_given(client):
    add_version(client, "mine", SALES)
    other = {**SALES, "targets": "returns"}
    assert model_names.choose(client, "lstm-zoo-x", "mine", other) == \
        model_names.Choice("mine")
