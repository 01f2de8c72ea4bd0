#!/usr/bin/python3
"""Tests of tools/check_install_deps.py: it finds what a fresh machine would lack."""

import os
import subprocess
import sys
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import check_install_deps as check  # noqa: E402

SCRIPT = os.path.join(REPO, "tools", "check_install_deps.py")


def run_check(*drop, cmake=False):
    args = [sys.executable, SCRIPT] + ([] if cmake else ["--no-cmake"])
    for p in drop:
        args += ["--drop", p]
    return subprocess.run(args, capture_output=True, text=True)


class ShellCommandsTest(unittest.TestCase):
    BUILTINS = check.builtins()

    def words(self, text):
        """The distinct non-builtin command words, in order of first use."""
        seen = []
        for w, _ in check.shell_commands(text):
            if w not in self.BUILTINS and w not in seen:
                seen.append(w)
        return seen

    def test_commands_after_separators_wrappers_and_substitutions(self):
        self.assertEqual(
            self.words('x=$(dirname "$0"); nice -n 10 tool -v a | tee log && { b; } || exit 1'),
            ["dirname", "nice", "tool", "tee", "b"])

    def test_loops_cases_arrays_and_comments_are_not_commands(self):
        text = "\n".join([
            "pkgs=(",
            "  alpha beta  # gamma (delta)",
            ")",
            "for p in one two; do echo $p; done",
            "case $x in",
            "  a|b) first;;",
            "  c) second;;",
            "esac",
            "sleep $((n * 10))",
            "command -v maybe >/dev/null && run",
            "list+=(\"$x\"); after",
            "cat >file <<EOF",
            "Not: a command",
            "EOF",
            "for ((i = ${#a[@]} - 1; i >= 0; i--)); do last; done",
        ])
        self.assertEqual(self.words(text), ["first", "second", "sleep", "run", "after", "cat", "last"])

    def test_continued_lines_are_one_command(self):
        self.assertEqual(self.words("if ! nice -n 1 prog \\\n  --flag; then\n  tail x\nfi"),
                         ["nice", "prog", "tail"])

    def test_makefile_recipes_are_commands_and_continued_rule_lines_are_not(self):
        text = ".PHONY: all test \\\n\ttest-tsan\nall:\n\t@cmake --build x \\\n\t  -j 2\n"
        found = sorted({w for w, _ in check.makefile_commands(text)} - self.BUILTINS)
        self.assertEqual(found, ["cmake"])
    def test_makefile_recipes_but_not_continued_rules(self):
        text = ".PHONY: all \\\n\ttest-tsan\nall:\n\t@cc -o x $(FLAGS) x.c\n"
        self.assertEqual([w for w, _ in check.makefile_commands(text)], ["cc"])

    def test_cxx_commands_come_from_what_std_system_runs(self):
        source = '\n'.join([
            'const std::string tool = "/usr/bin/chromium";',
            'const std::string label = "open loop";  // data, not a command',
            'std::string script = absl::StrCat("set -e; cd ", d, "; ", "openssl req ", key,',
            '                                  d, "/x.log");',
            'EXPECT_EQ(std::system(script.c_str()), 0);',
        ])
        found = sorted({w for w, _ in check.cxx_commands(source)} - self.BUILTINS)
        self.assertEqual(found, ["/usr/bin/chromium", "openssl"])


class CollectTest(unittest.TestCase):
    def test_functions_of_a_sourced_project_script_are_not_commands(self):
        # tools/fresh_root.sh sources tools/debian_sources.sh and calls its function.
        _, commands = check.collect(["tools/fresh_root.sh"])
        words = {w for w, _ in commands}
        self.assertIn("debootstrap", words)
        self.assertNotIn("write_debian_sources", words)


class MakefileCommandsTest(unittest.TestCase):
    def test_recipes_count_and_continued_prerequisite_lines_do_not(self):
        text = ("X ?= /usr/bin/tool\n"
                ".PHONY: a b \\\n\tc d\n"
                "a:\n\t@$(X) run \\\n\t  --flag\n\tother\n")
        self.assertEqual([w for w, _ in check.makefile_commands(text)],
                         ["/usr/bin/tool", "other"])


class CMakeTest(unittest.TestCase):
    def test_configure_steps_lose_their_folder_redirections_and_flag_variables(self):
        text = ("B ?= build\nall:\n\t@cmake -S . -B $(B) -G Ninja $(CMAKE_FLAGS) >/dev/null\n"
                "fuzz:\n\t@cmake -S . -B fz -DCMAKE_CXX_COMPILER=clang++ \\\n\t  -DX=ON\n"
                "\t@cmake --build fz\n")
        self.assertEqual(list(check.cmake_configurations(text)),
                         [(["-S", ".", "-G", "Ninja"], 3),
                          (["-S", ".", "-DCMAKE_CXX_COMPILER=clang++", "-DX=ON"], 5)])

    def test_cache_paths_are_found_files_not_prefixes_misses_or_exemptions(self):
        text = ("OpenMP_omp_LIBRARY:FILEPATH=/usr/lib/llvm-14/lib/libomp.so\n"
                "absl_DIR:PATH=/usr/lib/x86_64-linux-gnu/cmake/absl\n"
                "CMAKE_INSTALL_PREFIX:PATH=/usr/local\n"
                "Foo_LIBRARY:FILEPATH=Foo_LIBRARY-NOTFOUND\n"
                "RETRACE_CCACHE:FILEPATH=/usr/bin/ccache\n"
                "CMAKE_BUILD_TYPE:STRING=/not/a/path/entry\n")
        self.assertEqual(list(check.cmake_cache_paths(text)),
                         [("OpenMP_omp_LIBRARY", "/usr/lib/llvm-14/lib/libomp.so"),
                          ("absl_DIR", "/usr/lib/x86_64-linux-gnu/cmake/absl")])


class CheckTest(unittest.TestCase):
    def test_the_project_passes(self):
        r = run_check(cmake=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_an_unlisted_python_package_is_named_with_its_user_and_the_fix(self):
        # python3-torchvision depends on python3-pil, so both must go for PIL to be missing.
        r = run_check("python3-pil", "python3-torchvision")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stdout, r"Python module 'PIL' \([^)]*tools/fixtures/make_images\.py:\d+"
                                   r"[^)]*\):.*add python3-pil to its list")

    def test_an_unlisted_command_is_named_with_its_user_and_the_fix(self):
        r = run_check("chromium")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stdout, r"command '/usr/bin/chromium' \(tests/integration/"
                                   r"eval_cm_e2e_test\.cc:\d+\):.*add chromium to its list")

    def test_a_library_only_the_clang_build_finds_is_named_with_its_step_and_the_fix(self):
        # clang's OpenMP: the fuzz build's configure step needs it, no command or import does.
        r = run_check("libomp-dev", cmake=True)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stdout, r"file CMake found '/usr/lib/llvm-14/lib/libomp\.so' \(Makefile:"
                                   r"\d+ \(OpenMP_omp_LIBRARY\)\):.*add libomp-14-dev to its list")


if __name__ == "__main__":
    unittest.main()
