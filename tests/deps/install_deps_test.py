#!/usr/bin/python3
"""Tests of tools/install_deps.sh's choice of what to install.

dpkg-query, apt-get and id are replaced on PATH by small scripts: the real ones would need the
machine's package state to change (installing and removing packages) for each case. The fakes
answer from FAKE_INSTALLED (the packages dpkg reports installed) and record apt-get's arguments.
"""

import os
import subprocess
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "tools", "install_deps.sh")

FAKES = {
    # `dpkg-query -W -f=FORMAT [PKG]`: the Provides listing (no PKG) is empty; a package's status
    # says installed when FAKE_INSTALLED names it.
    "dpkg-query": """#!/bin/bash
pkg=${3:-}
[ -z "$pkg" ] && exit 0
[[ " $FAKE_INSTALLED " == *" $pkg "* ]] || exit 1
printf 'install ok installed'
""",
    "apt-get": """#!/bin/bash
echo "$*" >> "$FAKE_LOG"
""",
    "id": """#!/bin/bash
echo 0
""",
}


def listed():
    out = subprocess.run([SCRIPT, "--list"], capture_output=True, text=True, check=True).stdout
    return out.split()


class InstallDepsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.bin = os.path.join(self.dir.name, "bin")
        os.mkdir(self.bin)
        for name, text in FAKES.items():
            path = os.path.join(self.bin, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        self.log = os.path.join(self.dir.name, "apt-get.log")

    def tearDown(self):
        self.dir.cleanup()

    def run_script(self, installed):
        env = dict(os.environ, PATH=self.bin + ":" + os.environ["PATH"],
                   FAKE_INSTALLED=" ".join(installed), FAKE_LOG=self.log)
        result = subprocess.run([SCRIPT], capture_output=True, text=True, env=env, timeout=60)
        calls = open(self.log).read().splitlines() if os.path.exists(self.log) else []
        return result, [c for c in calls if " install " in " " + c + " "]

    def test_nothing_is_installed_when_every_package_is_there(self):
        result, installs = self.run_script(listed())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(installs, [])

    def test_only_the_missing_packages_are_installed(self):
        have = [p for p in listed() if p not in ("kubernetes-client", "python3-faiss")]
        result, installs = self.run_script(have)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(installs), 1, installs)
        self.assertEqual(installs[0].split()[-2:], ["kubernetes-client", "python3-faiss"])
        self.assertIn("kubernetes-client python3-faiss", result.stderr)

    def test_kubectl_from_the_kubernetes_repository_stands_for_kubernetes_client(self):
        # Its kubectl package owns /usr/bin/kubectl, so Debian's kubernetes-client cannot be
        # unpacked beside it: asking for it failed every `make` on such a machine.
        have = [p for p in listed() if p != "kubernetes-client"] + ["kubectl"]
        result, installs = self.run_script(have)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(installs, [])


if __name__ == "__main__":
    unittest.main()
