"""Config loading: merge order, overrides and the errors a user sees."""

import pytest

from recsys_spark.config import ConfigError, load_config


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_base_defaults_load():
    config = load_config()
    assert config.data.source == "synthetic"
    assert config.data.size == "s"
    assert config.recommend.k == 20
    assert config.seed == 42


def test_overlays_merge_in_order(tmp_path):
    first = write(tmp_path, "a.yaml", "recommend: {k: 5}\nseed: 7\n")
    second = write(tmp_path, "b.yaml", "recommend: {k: 9}\n")
    config = load_config([first, second])
    assert config.recommend.k == 9
    assert config.seed == 7


def test_set_overrides_files(tmp_path):
    overlay = write(tmp_path, "a.yaml", "recommend: {k: 5}\n")
    config = load_config([overlay], ["recommend.k=11", "spark.conf={spark.x: 'y'}"])
    assert config.recommend.k == 11
    assert config.spark.conf == {"spark.x": "y"}


def test_named_overlays_exist():
    for name in ("local", "cluster", "benchmark"):
        load_config([name])
    config = load_config(["movielens"], ["data.path=/tmp/ml"])
    assert config.data.source == "movielens"


def test_unknown_key_names_key_and_file(tmp_path):
    overlay = write(tmp_path, "bad.yaml", "recommend: {kk: 5}\n")
    with pytest.raises(ConfigError) as error:
        load_config([overlay])
    assert "recommend.kk" in str(error.value)
    assert str(overlay) in str(error.value)


def test_wrong_type_names_expected_type(tmp_path):
    overlay = write(tmp_path, "bad.yaml", "recommend: {k: ten}\n")
    with pytest.raises(ConfigError) as error:
        load_config([overlay])
    message = str(error.value)
    assert "recommend.k" in message
    assert "int" in message
    assert str(overlay) in message


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="seed"):
        load_config(overrides=["seed=true"])


def test_choice_outside_literal():
    with pytest.raises(ConfigError, match="one of 'tiny'"):
        load_config(overrides=["data.size=xl"])


def test_missing_required_value(tmp_path):
    base = write(tmp_path, "base.yaml", "data: {source: synthetic}\n")
    with pytest.raises(ConfigError) as error:
        load_config(base=base)
    assert "lake.root" in str(error.value)


def test_movielens_without_path_fails():
    with pytest.raises(ConfigError, match="data.path"):
        load_config(["movielens"])


def test_missing_file_named():
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(["nope.yaml"])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(overrides=["recommend.k"])


def test_non_positive_k_rejected():
    with pytest.raises(ConfigError, match="recommend.k"):
        load_config(overrides=["recommend.k=0"])


def test_bad_list_item_names_its_override():
    with pytest.raises(ConfigError) as error:
        load_config(overrides=["ranker.models=[foo]"])
    assert "'ranker.models[0]'" in str(error.value)
    assert "set in --set ranker.models=[foo]" in str(error.value)
