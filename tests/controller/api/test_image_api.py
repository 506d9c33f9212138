"""The Image API (Glance v2) of a real `kvmfleet serve`, driven by the unmodified `openstack` client,
openstacksdk and plain HTTP: create/upload/list/show/set/save/delete, hostile uploads refused with
nothing kept, tenancy (another project's private image is a 404), and the CLI registry seen from the
API and the other way round. No lab needed: images live on the controller.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TINY_IMAGE, CommandError, Service

SUFFIX = secrets.token_hex(3)
ALICE = f"img-a-{SUFFIX}"      # member of project ALICE
BOB = f"img-b-{SUFFIX}"        # member of project BOB
READER = f"img-r-{SUFFIX}"     # reader of project ALICE
UUID = "00000000-0000-4000-8000-000000000000"
GLANCE_KEYS = {"id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo", "os_hash_value",
               "owner", "size", "virtual_size", "min_ram", "min_disk", "disk_format", "container_format",
               "created_at", "updated_at", "tags", "self", "file", "schema", "os_hidden"}


def digests(data: bytes) -> dict[str, str]:
    return {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest(),
            "sha512": hashlib.sha512(data).hexdigest()}


@pytest.fixture(scope="module")
def users(service: Service) -> dict[str, Any]:
    service.user(ALICE, project=ALICE)
    service.user(BOB, project=BOB)
    service.user(READER, project=ALICE, role="reader")
    return {name: service.token(name, project=service.users[name].project) for name in (ALICE, BOB, READER)}


@pytest.fixture(scope="module")
def http(service: Service, users: dict[str, str]) -> Any:
    clients = {name: service.http(token) for name, token in users.items()}
    clients["admin"] = service.http(service.token())
    yield clients
    for client in clients.values():
        client.close()


def images_dir(service: Service) -> Path:
    return service.state / "images"


def files_of(service: Service, image_id: str) -> list[str]:
    return sorted(p.name for p in images_dir(service).glob(f"{image_id}*")) if images_dir(service).is_dir() else []


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/image/v2/images", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"/image/v2/images/{r.json()['id']}")
    return r.json()


def upload(client: httpx.Client, image_id: str, data: bytes, content_type: str = "application/octet-stream"
           ) -> httpx.Response:
    return client.put(f"/image/v2/images/{image_id}/file", content=data, headers={"Content-Type": content_type})


def osc(service: Service, user: str, *args: str, **kw: Any) -> Any:
    return service.openstack(*args, cloud=user, **kw)


# -- discovery and schemas --------------------------------------------------------------------------


def test_version_documents(service: Service) -> None:
    r = httpx.get(f"{service.url}/image", timeout=30)
    assert r.status_code == 300  # Glance answers its root with Multiple Choices
    versions = r.json()["versions"]
    assert [v["status"] for v in versions].count("CURRENT") == 1
    assert {v["id"] for v in versions} >= {"v2.0", "v2.5"}
    assert all(v["links"] == [{"rel": "self", "href": f"{service.url}/image/v2/"}] for v in versions)
    for path in ("/image/v2", "/image/v2/", "/image/versions"):
        again = httpx.get(f"{service.url}{path}", timeout=30)
        assert again.status_code == 200 and again.json() == r.json(), path


def test_schemas(http: dict[str, httpx.Client]) -> None:
    image = http[ALICE].get("/image/v2/schemas/image").json()
    assert image["name"] == "image" and image["additionalProperties"] == {"type": "string"}
    assert image["properties"]["disk_format"]["enum"] == [None, "qcow2", "raw"]
    assert GLANCE_KEYS <= set(image["properties"])
    images = http[ALICE].get("/image/v2/schemas/images").json()
    assert images["properties"]["images"]["items"]["name"] == "image"


# -- the openstack client -----------------------------------------------------------------------------


def test_openstack_image_lifecycle(service: Service, users: dict[str, str], tmp_path: Path) -> None:
    name = f"osc-{SUFFIX}"
    data = TINY_IMAGE.read_bytes()
    made = osc(service, ALICE, "image", "create", "--file", str(TINY_IMAGE), "--disk-format", "qcow2",
               "--container-format", "bare", "--property", "hw_disk_bus=virtio", name, as_json=True)
    assert made["status"] == "active" and made["visibility"] == "shared"  # Glance's default visibility
    assert int(made["size"]) == len(data)
    assert made["checksum"] == digests(data)["md5"]
    assert made["owner"] == json.loads(service.cli("project", "show", ALICE, "-f", "json").stdout)["id"]
    image_id = made["id"]
    stored = images_dir(service) / f"{image_id}.qcow2"
    assert stored.read_bytes() == data and (stored.stat().st_mode & 0o777) == 0o600
    assert files_of(service, image_id) == [stored.name]  # no .part left behind

    shown = osc(service, ALICE, "image", "show", image_id, as_json=True)
    assert shown["properties"]["os_hash_algo"] == "sha512"
    assert shown["properties"]["os_hash_value"] == digests(data)["sha512"]
    assert shown["properties"]["hw_disk_bus"] == "virtio"
    assert int(shown["virtual_size"]) > len(data) // 2
    assert name in {i["Name"] for i in osc(service, ALICE, "image", "list", as_json=True)}

    osc(service, ALICE, "image", "set", "--property", "os_distro=kvmfleet-tiny", "--property", "architecture=x86_64",
        "--min-ram", "64", "--tag", "tiny", image_id)
    shown = osc(service, ALICE, "image", "show", image_id, as_json=True)
    assert shown["properties"]["os_distro"] == "kvmfleet-tiny" and shown["min_ram"] == 64
    assert shown["tags"] == ["tiny"]
    osc(service, ALICE, "image", "unset", "--property", "os_distro", image_id)
    assert "os_distro" not in osc(service, ALICE, "image", "show", image_id, as_json=True)["properties"]
    tagged = osc(service, ALICE, "image", "list", "--tag", "tiny", as_json=True)
    assert [i["ID"] for i in tagged] == [image_id]

    saved = tmp_path / "saved.qcow2"
    osc(service, ALICE, "image", "save", "--file", str(saved), image_id)
    assert saved.read_bytes() == data

    osc(service, ALICE, "image", "delete", image_id)
    assert image_id not in {i["ID"] for i in osc(service, ALICE, "image", "list", as_json=True)}
    assert files_of(service, image_id) == []
    gone = osc(service, ALICE, "image", "show", image_id, check=False)
    assert gone.returncode != 0 and "No Image found" in gone.stderr + gone.stdout


def test_openstack_refuses_a_qcow2_with_a_backing_file(service: Service, users: dict[str, str],
                                                        tmp_path: Path) -> None:
    hostile = tmp_path / "backed.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(TINY_IMAGE), "-F", "qcow2", str(hostile)],
                   check=True)
    name = f"backed-{SUFFIX}"
    with pytest.raises(CommandError) as refused:
        osc(service, ALICE, "image", "create", "--file", str(hostile), "--disk-format", "qcow2",
            "--container-format", "bare", name)
    assert "415" in str(refused.value) and "backing file" in str(refused.value)
    # openstacksdk deletes the image whose upload failed: nothing is left
    assert name not in {i["Name"] for i in osc(service, ALICE, "image", "list", as_json=True)}
    assert not list(images_dir(service).glob("*.part"))


# -- openstacksdk -----------------------------------------------------------------------------------


def test_openstacksdk_upload_download_and_filters(service: Service, users: dict[str, str]) -> None:
    import openstack

    os.environ["OS_CLIENT_CONFIG_FILE"] = str(service.clouds_file)
    conn = openstack.connect(cloud=ALICE)
    try:
        data = TINY_IMAGE.read_bytes()
        image = conn.image.create_image(name=f"sdk-{SUFFIX}", filename=str(TINY_IMAGE), disk_format="qcow2",
                                        container_format="bare", allow_duplicates=True, validate_checksum=True,
                                        os_distro="tiny")
        try:
            image = conn.image.get_image(image.id)
            assert image.status == "active" and image.size == len(data)
            assert image.hash_algo == "sha512" and image.hash_value == digests(data)["sha512"]
            assert image.os_distro == "tiny"  # a property the sdk knows by name
            got = conn.image.download_image(image)  # the sdk checks the sha512 itself
            assert hashlib.sha256(got.content).hexdigest() == digests(data)["sha256"]
            assert [i.id for i in conn.image.images(name=f"sdk-{SUFFIX}")] == [image.id]
            assert image.id in [i.id for i in conn.image.images(status="active", owner=image.owner_id)]
        finally:
            conn.image.delete_image(image, ignore_missing=True)
        assert conn.image.find_image(f"sdk-{SUFFIX}") is None
    finally:
        conn.close()
        os.environ.pop("OS_CLIENT_CONFIG_FILE", None)


# -- hostile uploads: refused with 415, nothing kept, the image back to queued ----------------------


def _hostile(kind: str, tmp: Path) -> tuple[str, bytes]:
    if kind == "backing-file":
        path = tmp / "b.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(TINY_IMAGE), "-F", "qcow2", str(path)],
                       check=True)
        return "qcow2", path.read_bytes()
    if kind == "external-data-file":
        path = tmp / "d.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={tmp / 'd.raw'}", str(path),
                        "64M"], check=True)
        return "qcow2", path.read_bytes()
    if kind == "raw-that-is-qcow2":
        return "raw", TINY_IMAGE.read_bytes()
    if kind == "garbage-declared-qcow2":
        return "qcow2", os.urandom(256 * 1024)
    if kind == "empty":
        return "qcow2", b""
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["backing-file", "external-data-file", "raw-that-is-qcow2", "garbage-declared-qcow2",
                                  "empty"])
def test_hostile_upload_is_refused_and_nothing_kept(service: Service, http: dict[str, httpx.Client], kind: str,
                                                    tmp_path: Path) -> None:
    disk_format, data = _hostile(kind, tmp_path)
    image = create(http[ALICE], name=f"hostile-{kind}-{SUFFIX}", disk_format=disk_format, container_format="bare")
    assert image["status"] == "queued" and image["size"] is None and image["checksum"] is None
    r = upload(http[ALICE], image["id"], data)
    assert r.status_code == 415, r.text
    assert r.json()["code"] == "415 Unsupported Media Type" and r.json()["message"]
    shown = http[ALICE].get(f"/image/v2/images/{image['id']}").json()
    assert shown["status"] == "queued" and shown["size"] is None and shown["checksum"] is None
    assert files_of(service, image["id"]) == []
    # the refusal is not sticky: good data may follow
    ok = upload(http[ALICE], image["id"], TINY_IMAGE.read_bytes() if disk_format == "qcow2" else os.urandom(65536))
    assert ok.status_code == 204, ok.text
    assert http[ALICE].get(f"/image/v2/images/{image['id']}").json()["status"] == "active"
    assert http[ALICE].delete(f"/image/v2/images/{image['id']}").status_code == 204


def test_upload_rules(service: Service, http: dict[str, httpx.Client]) -> None:
    client = http[ALICE]
    no_format = create(client, name=f"noformat-{SUFFIX}")
    assert no_format["visibility"] == "shared" and no_format["disk_format"] is None
    r = upload(client, no_format["id"], b"data")
    assert r.status_code == 400 and "disk_format" in r.json()["message"]
    image = create(client, name=f"rules-{SUFFIX}", disk_format="raw", container_format="bare")
    assert upload(client, image["id"], b"x" * 4096, content_type="application/json").status_code == 415
    data = os.urandom(1 << 20)
    assert upload(client, image["id"], data).status_code == 204
    shown = client.get(f"/image/v2/images/{image['id']}").json()
    assert shown["size"] == len(data) and shown["virtual_size"] == len(data)
    assert shown["checksum"] == digests(data)["md5"] and shown["os_hash_value"] == digests(data)["sha512"]
    again = upload(client, image["id"], data)
    assert again.status_code == 409, again.text  # data is set once (Glance: active -> saving is refused)
    got = client.get(f"/image/v2/images/{image['id']}/file")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-md5"] == digests(data)["md5"]
    assert client.get(f"/image/v2/images/{no_format['id']}/file").status_code == 204  # no data yet
    for made in (image, no_format):
        assert client.delete(f"/image/v2/images/{made['id']}").status_code == 204


def test_size_cap(service_factory: Any, tmp_path: Path) -> None:
    small = service_factory({"api": {"image_size_cap": 1 << 20}})
    with small.http(small.token()) as client:
        image = create(client, name="big", disk_format="raw", container_format="bare")
        r = upload(client, image["id"], os.urandom((1 << 20) + 1))
        assert r.status_code == 413, r.text
        assert "image size cap" in r.json()["message"]
        assert client.get(f"/image/v2/images/{image['id']}").json()["status"] == "queued"
        assert files_of(small, image["id"]) == []
        assert upload(client, image["id"], os.urandom(1 << 20)).status_code == 204  # at the cap: fine


# -- the view, request validation, PATCH --------------------------------------------------------------


def test_view_has_exactly_glances_keys(http: dict[str, httpx.Client]) -> None:
    image = create(http[ALICE], name=f"view-{SUFFIX}", disk_format="qcow2", container_format="bare",
                   min_ram=32, min_disk=1, tags=["a", "b"], hw_qemu_guest_agent="yes")
    assert set(image) == GLANCE_KEYS | {"hw_qemu_guest_agent"}
    assert image["self"] == f"/v2/images/{image['id']}" and image["file"] == f"/v2/images/{image['id']}/file"
    assert image["schema"] == "/v2/schemas/image" and image["tags"] == ["a", "b"]
    assert image["created_at"].endswith("Z") and image["os_hidden"] is False and image["protected"] is False
    assert http[ALICE].delete(f"/image/v2/images/{image['id']}").status_code == 204


@pytest.mark.parametrize("body, status", [
    ({"disk_format": "vmdk"}, 400),
    ({"container_format": "ova"}, 400),
    ({"min_ram": -1}, 400),
    ({"min_disk": "1"}, 400),
    ({"name": "x" * 256}, 400),
    ({"name": "bell\u0007"}, 400),     # names reach the hosts' libvirt metadata (XML)
    ({"id": "not-a-uuid"}, 400),
    ({"tags": "notalist"}, 400),
    ({"visibility": "everyone"}, 400),
    ({"hw_custom": 5}, 400),            # extra properties are strings
    ({"architecture": "sparc"}, 400),
    ({"status": "active"}, 403),        # read-only
    ({"self": "/v2/images/x"}, 403),
    ({"os_glance_import_task": "x"}, 403),  # reserved namespace
    ({"deleted": "true"}, 403),
    ({"visibility": "public"}, 403),    # only admins publicize
])
def test_create_refuses(http: dict[str, httpx.Client], body: dict[str, Any], status: int) -> None:
    r = http[ALICE].post("/image/v2/images", json=body)
    assert r.status_code == status, r.text
    assert r.json()["message"]


def test_owner_is_a_project(http: dict[str, httpx.Client]) -> None:
    assert http[ALICE].post("/image/v2/images", json={"owner": UUID}).status_code == 403  # not theirs to give
    assert http["admin"].post("/image/v2/images", json={"owner": "no-such-project"}).status_code == 400
    ownerless = create(http["admin"], name=f"ownerless-{SUFFIX}", owner="")
    assert ownerless["owner"] is None
    assert http["admin"].delete(f"/image/v2/images/{ownerless['id']}").status_code == 204


def test_create_malformed_and_by_reader(http: dict[str, httpx.Client]) -> None:
    r = http[ALICE].post("/image/v2/images", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert http[READER].post("/image/v2/images", json={"name": "r"}).status_code == 403
    assert http[READER].get("/image/v2/images").status_code == 200


def _patch(client: httpx.Client, image_id: str, ops: list[dict[str, Any]],
           content_type: str = "application/openstack-images-v2.1-json-patch") -> httpx.Response:
    return client.patch(f"/image/v2/images/{image_id}", json=ops, headers={"Content-Type": content_type})


def test_patch(http: dict[str, httpx.Client]) -> None:
    client = http[ALICE]
    image = create(client, name=f"patch-{SUFFIX}", disk_format="qcow2", container_format="bare")
    path = image["id"]
    r = _patch(client, path, [{"op": "replace", "path": "/name", "value": "renamed ☃ <b>&"},
                              {"op": "add", "path": "/os_distro", "value": "debian"},
                              {"op": "add", "path": "/a~1b", "value": "slash"},
                              {"op": "replace", "path": "/protected", "value": True}])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "renamed ☃ <b>&" and body["os_distro"] == "debian" and body["a/b"] == "slash"
    assert body["protected"] is True
    assert http[ALICE].delete(f"/image/v2/images/{path}").status_code == 403  # protected
    refusals = [
        ([{"op": "remove", "path": "/name"}], 403),                       # base attributes stay
        ([{"op": "replace", "path": "/checksum", "value": "x"}], 403),    # read-only
        ([{"op": "replace", "path": "/missing", "value": "x"}], 409),     # Glance: property does not exist
        ([{"op": "remove", "path": "/missing"}], 409),
        ([{"op": "move", "path": "/name"}], 400),
        ([{"op": "add", "path": "/a/b", "value": "x"}], 400),             # one level only
        ([{"op": "add", "path": "/min_ram", "value": "many"}], 400),
        ({"op": "add"}, 400),                                             # not a list
        ([{"op": "replace", "path": "/owner", "value": "someone"}], 403),  # admins only
        ([{"op": "replace", "path": "/visibility", "value": "public"}], 403),
    ]
    for ops, status in refusals:
        r = _patch(client, path, ops)  # type: ignore[arg-type]
        assert r.status_code == status, (ops, r.text)
    assert _patch(client, path, [{"op": "replace", "path": "/name", "value": "x"}],
                  content_type="application/json").status_code == 415
    draft4 = _patch(client, path, [{"replace": "/protected", "value": False}],
                    content_type="application/openstack-images-v2.0-json-patch")
    assert draft4.status_code == 200 and draft4.json()["protected"] is False
    assert http[ALICE].delete(f"/image/v2/images/{path}").status_code == 204


# -- tenancy ------------------------------------------------------------------------------------------


def test_private_image_is_not_found_for_another_project(http: dict[str, httpx.Client]) -> None:
    mine = create(http[ALICE], name=f"private-{SUFFIX}", disk_format="raw", container_format="bare",
                  visibility="private")
    assert upload(http[ALICE], mine["id"], os.urandom(4096)).status_code == 204
    path = f"/image/v2/images/{mine['id']}"
    bob = http[BOB]
    assert bob.get(path).status_code == 404
    assert bob.get(f"{path}/file").status_code == 404
    assert bob.delete(path).status_code == 404
    assert _patch(bob, mine["id"], [{"op": "replace", "path": "/name", "value": "x"}]).status_code == 404
    assert upload(bob, mine["id"], b"x").status_code == 404
    assert bob.put(f"{path}/tags/t").status_code == 404
    assert mine["id"] not in {i["id"] for i in bob.get("/image/v2/images?limit=1000").json()["images"]}
    assert mine["id"] in {i["id"] for i in http[ALICE].get("/image/v2/images").json()["images"]}
    assert http[READER].get(path).status_code == 200  # same project, reader
    assert http[READER].delete(path).status_code == 403
    assert http["admin"].get(path).status_code == 200  # admins see every project's images
    # community: anyone may use it by id, only asked-for lists show it
    assert _patch(http[ALICE], mine["id"], [{"op": "replace", "path": "/visibility", "value": "community"}]
                  ).status_code == 200
    assert bob.get(path).status_code == 200
    assert mine["id"] not in {i["id"] for i in bob.get("/image/v2/images").json()["images"]}
    assert mine["id"] in {i["id"] for i in bob.get("/image/v2/images?visibility=community").json()["images"]}
    assert bob.delete(path).status_code == 403  # seen, not owned
    assert http[ALICE].delete(path).status_code == 204
    assert http[ALICE].get(path).status_code == 404


def test_public_images_are_the_admins(service: Service, http: dict[str, httpx.Client]) -> None:
    public = create(http["admin"], name=f"public-{SUFFIX}", disk_format="raw", container_format="bare",
                    visibility="public")
    path = f"/image/v2/images/{public['id']}"
    assert http[BOB].get(path).status_code == 200
    assert _patch(http[BOB], public["id"], [{"op": "add", "path": "/x", "value": "y"}]).status_code == 403
    assert http[BOB].delete(path).status_code == 403
    assert http["admin"].delete(path).status_code == 204


# -- listing --------------------------------------------------------------------------------------------


def test_list_filters_sorting_and_paging(http: dict[str, httpx.Client]) -> None:
    client = http[BOB]
    made = [create(client, name=f"page-{SUFFIX}-{i}", disk_format="raw", container_format="bare",
                   tags=["paged"] + (["odd"] if i % 2 else [])) for i in range(5)]
    ids = {m["id"] for m in made}
    try:
        first = client.get("/image/v2/images", params={"tag": "paged", "limit": 2, "sort_key": "name",
                                                        "sort_dir": "asc"}).json()
        assert [i["name"] for i in first["images"]] == [f"page-{SUFFIX}-0", f"page-{SUFFIX}-1"]
        assert first["schema"] == "/v2/schemas/images" and first["first"].startswith("/v2/images?")
        seen = [i["id"] for i in first["images"]]
        page = first
        while "next" in page:
            assert page["next"].startswith("/v2/images?") and "marker=" in page["next"]
            page = client.get("/image" + page["next"]).json()
            seen += [i["id"] for i in page["images"]]
        assert set(seen) == ids and len(seen) == 5
        odd = client.get("/image/v2/images", params=[("tag", "paged"), ("tag", "odd")]).json()["images"]
        assert {i["name"] for i in odd} == {f"page-{SUFFIX}-1", f"page-{SUFFIX}-3"}
        names = f"in:page-{SUFFIX}-0,page-{SUFFIX}-4"
        picked = client.get("/image/v2/images", params={"name": names, "sort": "name:desc"}).json()["images"]
        assert [i["name"] for i in picked] == [f"page-{SUFFIX}-4", f"page-{SUFFIX}-0"]
        assert all(i["status"] == "queued" for i in client.get("/image/v2/images?status=queued").json()["images"])
        for bad in ("limit=-1", "sort_key=owner", "sort_dir=sideways", f"marker={UUID}", "visibility=nobody",
                    "member_status=maybe", "os_hidden=perhaps", "created_at=soon:2020"):
            r = client.get(f"/image/v2/images?{bad}")
            assert r.status_code == 400, (bad, r.text)
    finally:
        for m in made:
            client.delete(f"/image/v2/images/{m['id']}")


def test_hidden_images_are_left_out_unless_asked(http: dict[str, httpx.Client]) -> None:
    image = create(http[BOB], name=f"hidden-{SUFFIX}", disk_format="raw", container_format="bare", os_hidden=True)
    try:
        assert image["id"] not in {i["id"] for i in http[BOB].get("/image/v2/images").json()["images"]}
        hidden = http[BOB].get("/image/v2/images?os_hidden=true").json()["images"]
        assert image["id"] in {i["id"] for i in hidden}
    finally:
        http[BOB].delete(f"/image/v2/images/{image['id']}")


# -- one registry: the CLI and the API --------------------------------------------------------------


def test_cli_registered_images_appear_in_the_api_and_back(service: Service, http: dict[str, httpx.Client]) -> None:
    name = f"cli-{SUFFIX}"
    service.cli("image", "register", name, "--file", str(TINY_IMAGE), "--property", "os_distro=tiny")
    listed = {i["name"]: i for i in http[BOB].get("/image/v2/images?limit=1000").json()["images"]}
    image = listed[name]
    assert image["visibility"] == "public" and image["owner"] is None and image["status"] == "active"
    assert image["os_distro"] == "tiny" and image["architecture"] == "x86_64"
    assert image["checksum"] == digests(TINY_IMAGE.read_bytes())["md5"]
    api_made = create(http[BOB], name=f"api-{SUFFIX}", disk_format="qcow2", container_format="bare")
    assert upload(http[BOB], api_made["id"], TINY_IMAGE.read_bytes()).status_code == 204
    cli_list = service.cli("image", "list", "-f", "json").stdout
    assert api_made["id"] in cli_list and name in cli_list
    service.cli("image", "delete", name)
    assert http[BOB].get(f"/image/v2/images/{image['id']}").status_code == 404
    assert http[BOB].delete(f"/image/v2/images/{api_made['id']}").status_code == 204
