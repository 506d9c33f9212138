from __future__ import annotations

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import (
    path_inside,
    validate_abs_path,
    validate_mac,
    validate_name,
    validate_uuid,
)
from conftest import case_params


@pytest.mark.parametrize("case", case_params("names", "good-*.json"))
def test_good_names_pass_unchanged(case):
    assert validate_name(case["value"], case["what"]) == case["value"]


@pytest.mark.parametrize("case", case_params("names", "bad-*.json"))
def test_bad_names_are_refused_naming_what_and_why(case):
    with pytest.raises(ValidationError) as info:
        validate_name(case["value"], case["what"])
    assert case["error"] in info.value.msg
    assert info.value.msg.startswith(case["what"])


def test_mac_and_uuid_are_normalised_to_lower_case():
    assert validate_mac("52:54:00:AB:CD:EF") == "52:54:00:ab:cd:ef"
    assert validate_uuid("6F1C7A4E-0B5F-4A8E-9A7E-0123456789AB") == "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab"
    for bad in ("52:54:00:ab:cd", "52-54-00-ab-cd-ef", "", None):
        with pytest.raises(ValidationError):
            validate_mac(bad)
    with pytest.raises(ValidationError):
        validate_uuid("6f1c7a4e0b5f4a8e9a7e0123456789ab")


@pytest.mark.parametrize("value", ["relative/path", "", "/var/lib/../etc", "/a/..", "/a\x00b"])
def test_bad_absolute_paths(value):
    with pytest.raises(ValidationError):
        validate_abs_path(value, "images_dir")


def test_abs_path_is_normalised():
    assert validate_abs_path("/var//lib/./x/", "d") == "/var/lib/x"


def test_path_inside_follows_symlinks(tmp_path):
    inside = tmp_path / "images"
    inside.mkdir()
    (inside / "base.qcow2").write_text("")
    link = tmp_path / "elsewhere"
    link.symlink_to(inside / "base.qcow2")
    assert path_inside(str(inside / "base.qcow2"), str(inside))
    assert path_inside(str(link), str(inside))
    assert not path_inside(str(tmp_path / "images2" / "x"), str(inside))
