#!/usr/bin/env bash
# ansible-test sanity for kvmfleet.compute, locally with the venv's Python.
# Copies the collection (what galaxy.yml ships, plus tests/) into a temp ansible_collections/kvmfleet/compute tree (ansible-test needs that
# layout and a git-free copy), then runs the listed tests. Extra args go to ansible-test, e.g.
#   bash tests/sanity/run.sh --test pylint
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${KVMFLEET_VENV:-$repo/.venv}"
python="$venv/bin/python"
export PATH="$venv/bin:$PATH"

# ansible-test bootstraps pip into its sanity virtualenvs with a get-pip.py it downloads from a host
# this machine cannot reach; give it a stand-in (ensurepip + the package index) unless a real one is cached.
pip_version="$(sed -n "s/^ *pip='\\([0-9.]*\\)',.*/\\1/p" "$("$python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -1)"
pip_version="${pip_version:-24.2}"
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$get_pip" ]; then
  mkdir -p "$(dirname "$get_pip")"
  cp "$repo/tests/sanity/get_pip_standin.py" "$get_pip"
fi

tmp="$(mktemp -d /tmp/kvmfleet-sanity.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
dest="$tmp/ansible_collections/kvmfleet/compute"
mkdir -p "$dest"
rsync -a --delete \
  --exclude .venv --exclude .cache --exclude build --exclude .git --exclude tests/output \
  --exclude '__pycache__' --exclude '*.egg-info' --exclude .pytest_cache --exclude .lab \
  --exclude .schemathesis --exclude .hypothesis --exclude .ruff_cache --exclude /contrib \
  --exclude /controller --exclude /bench --exclude /.ci --exclude /tests/controller --exclude /inventories/lab \
  "$repo/" "$dest/"

# Every sanity test ansible-test has, less those needing tools this project does not install.
skip=(shellcheck pslint)
args=()
for t in "${skip[@]}"; do args+=(--skip-test "$t"); done

cd "$dest"
"$venv/bin/ansible-test" sanity --python 3.11 --local --color no "${args[@]}" "$@"
