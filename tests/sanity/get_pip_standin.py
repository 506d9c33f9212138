"""Stand-in for PyPA's get-pip.py, used by ansible-test to put pip into its sanity virtualenvs.

ansible-test downloads get-pip.py from a host this machine cannot reach; it runs the cached copy as
`python get_pip.py [pip options] [--no-setuptools] [--no-wheel] pip==X`. This does the same with the
interpreter's own ensurepip and then pip from the configured package index.
"""

import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel", "--no-pip"}


def main():
    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
    env = dict(os.environ)
    env.pop("GET_PIP", None)
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    packages = [a for a in args if not a.startswith("-")]
    if packages:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q"] + args, check=True, env=env)


if __name__ == "__main__":
    main()
