# kvmfleet: make demo / make test on a fresh Debian 12 machine, as root.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

REPO       := $(abspath .)
VENV       := $(REPO)/.venv
PY         := $(VENV)/bin/python
KVMFLEET   := $(VENV)/bin/kvmfleet
STAMPS     := $(REPO)/.cache/stamps
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(REPO)/ansible.cfg

APT_PACKAGES := qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev \
  python3-libvirt python3-venv python3-dev dnsmasq-base openssh-server openssh-client syslinux \
  syslinux-common mtools dosfstools iproute2 iptables ebtables cpio genisoimage busybox-static \
  pkg-config gcc rsync postgresql postgresql-contrib procps kmod novnc chromium

# Lab used by `make demo`; `make test` uses its own lab so the two never collide.
DEMO_LAB   ?= lab
TEST_LAB   ?= ci$(shell echo -n "$(REPO)" | md5sum | cut -c1-4)
# The lab tests run in two pytest-xdist workers, each on a lab of its own (tests/conftest.py maps worker
# gwN to the N-th lab of KVMFLEET_LABS); whole files stay on one worker (--dist loadfile).
TEST_LABS  ?= $(TEST_LAB) $(TEST_LAB)b
LAB_WORKERS = -n $(words $(TEST_LABS)) --dist loadfile
empty :=
space := $(empty) $(empty)
comma := ,
LAB_ENV     = KVMFLEET_LAB=$(firstword $(TEST_LABS)) KVMFLEET_LABS=$(subst $(space),$(comma),$(strip $(TEST_LABS)))

.PHONY: help deps venv collection image demo demo-down test test-unit test-sanity \
        test-integration test-controller lab-up lab-down postgres lint bench clean openstack-cloud-venv

help:
	@echo "make demo   - install what is missing, bring up a 3-host lab, start one tiny guest per host, serve the API"
	@echo "make test   - install what is missing and run every test (unit, sanity, lab integration, controller)"
	@echo "make demo-down - stop the demo's kvmfleet serve (by its pid) and tear the demo lab down"

$(STAMPS):
	mkdir -p $@

deps: $(STAMPS)/apt
$(STAMPS)/apt: | $(STAMPS)
	missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	touch $@

venv: $(STAMPS)/venv
$(STAMPS)/venv: pyproject.toml $(STAMPS)/apt | $(STAMPS)
	test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

collection: venv
	$(PY) -c 'from kvmfleet.paths import collections_path; collections_path()'

image: venv
	$(KVMFLEET) image build-tiny

demo: collection image
	DEMO_LAB=$(DEMO_LAB) bash scripts/demo.sh

demo-down: venv
	DEMO_LAB=$(DEMO_LAB) bash scripts/demo.sh down
	$(KVMFLEET) lab down --name $(DEMO_LAB)
	rm -rf $(REPO)/.cache/demo-state

postgres: deps
	bash $(REPO)/tests/postgres.sh start

test: collection image postgres
	$(MAKE) --no-print-directory lint test-unit test-sanity
	for lab in $(TEST_LABS); do $(KVMFLEET) lab up --name $$lab --hosts 3 || exit 1; done
	status=0; $(MAKE) --no-print-directory test-integration test-controller || status=$$?; \
	for lab in $(TEST_LABS); do $(KVMFLEET) lab down --name $$lab || true; done; exit $$status

test-unit: collection
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

test-sanity: collection
	bash tests/sanity/run.sh

# The oldest ansible-core the collection declares (meta/runtime.yml), for a smoke run on the lab.
ANSIBLE_OLDEST := $(shell sed -n 's/^requires_ansible: *">=\([0-9]*\.[0-9]*\).*/\1/p' meta/runtime.yml)
ansible-oldest: $(STAMPS)/ansible-oldest-$(ANSIBLE_OLDEST)
$(STAMPS)/ansible-oldest-$(ANSIBLE_OLDEST): $(STAMPS)/apt | $(STAMPS)
	rm -rf $(REPO)/.cache/ansible-oldest
	/usr/bin/python3 -m venv --system-site-packages $(REPO)/.cache/ansible-oldest
	$(REPO)/.cache/ansible-oldest/bin/pip install -q 'ansible-core==$(ANSIBLE_OLDEST).*'
	touch $@

test-integration: collection ansible-oldest
	$(LAB_ENV) $(PY) -m pytest -q -p no:cacheprovider $(LAB_WORKERS) --durations=15 tests/integration

# openstack.cloud 2.5.0 (the collection in ansible 12.3, for ansible-core 2.19) reads openstack.version, which
# openstacksdk removed in 4.15: the collection's modules run on an interpreter with the SDK it supports
# (tests/controller/api/test_openstack_cloud.py); the CLI, openstacksdk tests and the controller keep the venv's.
OPENSTACK_CLOUD_SDK := 4.14.0
OPENSTACK_CLOUD_VENV := $(REPO)/.cache/openstack-cloud-venv
openstack-cloud-venv: $(STAMPS)/openstack-cloud-venv-$(OPENSTACK_CLOUD_SDK)
$(STAMPS)/openstack-cloud-venv-$(OPENSTACK_CLOUD_SDK): $(STAMPS)/apt | $(STAMPS)
	rm -rf $(OPENSTACK_CLOUD_VENV)
	/usr/bin/python3 -m venv $(OPENSTACK_CLOUD_VENV)
	$(OPENSTACK_CLOUD_VENV)/bin/pip install -q 'openstacksdk==$(OPENSTACK_CLOUD_SDK)'
	touch $@

test-controller: collection openstack-cloud-venv
	$(LAB_ENV) $(PY) -m pytest -q -p no:cacheprovider $(LAB_WORKERS) --durations=40 tests/controller

# ruff (config in pyproject.toml), yamllint (.yamllint), ansible-lint (.ansible-lint) on the playbooks and roles.
lint: collection
	$(VENV)/bin/ruff check controller plugins tests bench
	$(VENV)/bin/yamllint -s .
	ANSIBLE_COLLECTIONS_PATH=$(REPO)/build/collections $(VENV)/bin/ansible-lint -q playbooks roles

bench: collection image
	$(PY) bench/host_ops.py

clean:
	rm -rf build .cache/stamps
