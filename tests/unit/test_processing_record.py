"""The record of processing names every place the code writes: each data class's bucket, every other
bucket, every registry under `_callvault/`, every topic callvault or faust creates."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import yaml

import callvault.storage
from callvault.rules.data_classes import data_classes, registered
from callvault.rules.processing_record import record, record_rows
from callvault.settings import Settings, bucket_settings
from callvault.storage.subject_flags import SubjectFlag
from callvault.stream.app import STATE_TABLE
from tests.unit.test_data_class_registry import NOTE

ROOT = Path(__file__).resolve().parents[2]


def named() -> str:
    return "\n".join(p.where for p in record())


def test_every_bucket_setting_and_data_class_is_named() -> None:
    for setting in bucket_settings():
        assert f"`{setting}`" in named(), f"the record does not name the bucket {setting}"
    for kind in data_classes():
        assert f"`{kind.bucket_setting}`" in named()


def test_every_registry_the_storage_layer_writes_is_named() -> None:
    prefixes = set()
    for module in pkgutil.iter_modules(callvault.storage.__path__):
        loaded = importlib.import_module(f"callvault.storage.{module.name}")
        prefixes |= {v for v in vars(loaded).values() if isinstance(v, str) and v.startswith("_callvault/")}
    prefixes |= {f"_callvault/{flag.value}-subjects/" for flag in SubjectFlag}
    assert len(prefixes) >= 10, prefixes  # the scan found the registries
    missing = sorted(p for p in prefixes if p not in named())
    assert missing == [], f"registries the record does not name: {missing}"


def test_every_topic_callvault_or_faust_creates_is_named() -> None:
    settings = Settings()
    for topic in settings.all_topics():
        assert f"`{topic.removeprefix(settings.topic_prefix)}`" in named(), topic
    assert f"{STATE_TABLE}-changelog" in named()
    manifests = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/base/topics.yaml").read_text()) if d]
    for topic in (d["spec"].get("topicName", d["metadata"]["name"]) for d in manifests):
        short = re.sub(r"^(callvault\.|callvault-worker-)", "", topic)
        assert short in named(), f"the deployment creates {topic}, which the record does not name"


def test_a_new_data_class_is_in_the_record_as_soon_as_it_is_registered() -> None:
    with registered(NOTE):
        row = next(line for line in record_rows() if "`notes_bucket`" in line)
    assert "a coach's notes on the call" in row and "`CALLVAULT_NOTE_RETENTION`" in row


def test_the_dpo_guide_carries_the_record_as_the_code_writes_it() -> None:
    page = (ROOT / "docs/dpo.md").read_text()
    assert "\n".join(record_rows()) in page, "run `make docs`"
