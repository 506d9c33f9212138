"""image: judging qemu-img output, from data files (one case per file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "build" / "collections"
if (_COLLECTIONS / "ansible_collections").is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.kvmfleet.compute.plugins.module_utils import _image
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
    ImageError,
    ValidationError,
)

CASES = sorted((Path(__file__).resolve().parent / "fixtures" / "image" / "qemu_img_info").glob("*.json"))


def test_cases_exist():
    assert {p.stem for p in CASES} >= {"good-qcow2", "backing-file", "data-file", "raw"}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_parse_qemu_img_info(path):
    case = json.loads(path.read_text())
    text = json.dumps(case["info"])
    if "error" in case:
        with pytest.raises(ImageError) as err:
            _image.parse_qemu_img_info(text, case["format"], "/cache/x.img")
        assert case["error"] in err.value.msg
        assert "/cache/x.img" in err.value.msg
    else:
        assert _image.parse_qemu_img_info(text, case["format"], "/cache/x.img") == case["expect"]


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]"])
def test_parse_qemu_img_info_garbage(text):
    with pytest.raises(ImageError, match="qemu-img info printed"):
        _image.parse_qemu_img_info(text, "qcow2", "/cache/x.img")


@pytest.mark.parametrize("rc, text, error", [
    (0, '{"check-errors": 0}', None),
    (3, '{"leaks": 4, "check-errors": 0}', None),
    (2, '{"corruptions": 102, "check-errors": 0}', "found 102 corruption"),
    (2, "", "found some corruption"),
    (1, '{"check-errors": 1}', "could not be checked: qemu-img check exited 1"),
    (63, "", "could not be checked"),
])
def test_parse_qemu_img_check(rc, text, error):
    if error is None:
        _image.parse_qemu_img_check(rc, text, "/cache/x.img")
    else:
        with pytest.raises(ImageError, match=error):
            _image.parse_qemu_img_check(rc, text, "/cache/x.img")


@pytest.mark.parametrize("value, expected", [
    ("A" * 64, "a" * 64),
    ("sha256:" + "0f" * 32, "0f" * 32),
    ("  SHA256:" + "ab" * 32 + "\n", "ab" * 32),
])
def test_normalise_sha256(value, expected):
    assert _image.normalise_sha256(value) == expected


@pytest.mark.parametrize("value", ["", "a" * 63, "a" * 65, "g" * 64, "md5:" + "a" * 32, None, 12])
def test_normalise_sha256_refuses(value):
    with pytest.raises(ValidationError, match="sha256"):
        _image.normalise_sha256(value)
