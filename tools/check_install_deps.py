#!/usr/bin/python3
"""Checks that tools/install_deps.sh installs everything the project runs.

A fresh Debian 12 machine has only what `debootstrap --variant=minbase` gives it plus what
tools/install_deps.sh installs. This check fails when the project uses something that comes from
neither, even if this machine happens to have it (installed by hand, or by another project):

- every Python module imported by the project's own Python (except the files and modules in
  EXEMPT_FILES / EXEMPT_MODULES, each with its reason): not the standard library and not the
  project's own, it must be installed, and the file it is loaded from must belong to a Debian
  package in the closure below;
- every file that CMake finds in each of the Makefile's configure steps (libraries, headers,
  package configs, compilers; CMakeCache.txt's paths, each step run in a temporary folder);
- every external command that the Makefile, .ci/run, the shell scripts, the CMake test commands
  and the tests' sources (string literals of C++ tests, subprocess calls of Python) run: it must
  be installed and belong to such a package, or be a shell builtin.

The closure is the packages tools/install_deps.sh lists, with their dependencies
(`apt-cache depends --recurse`, recommends left out as the script leaves them out), plus the
packages a minbase root has (Priority: required). `dpkg -S` names a file's package.

A failure names the module or command, the file (and line) that uses it, and the package to add.

  /usr/bin/python3 tools/check_install_deps.py              # the check (a CTest case)
  /usr/bin/python3 tools/check_install_deps.py --drop python3-pil   # what if PIL were not listed
"""

import argparse
import ast
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Where a fresh root looks for commands (root's PATH on Debian); the caller's PATH may hold
# interpreters of its own (pyenv) that a fresh machine does not have.
FRESH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Files that do not run during the build, `make serve` or `make test`, with the reason.
EXEMPT_FILES = {
    "bench/": "benchmarks run by hand on a prepared machine; each script checks and names the "
              "packages it needs (bench/python_baseline.sh, bench/model_path.sh)",
    "core/text/internal/gen_html_entities.py": "run by hand to regenerate html_entities.inc",
    "fuzz/make_seeds.py": "run by hand to regenerate the seed corpus (fuzz/README.md)",
    "docker/": "the image's host scripts (make docker-test, docker/build.sh) run outside make "
               "test, need root, and install their own host tools (podman, runc, debootstrap) "
               "or use the user's container engine; inside the image, tools/install_deps.sh "
               "installs the build's packages",
}

# Modules imported where they are optional, with the reason they are not installed here.
EXEMPT_MODULES = {
    "transformers": "Hugging Face checkpoints: the exporters run on a machine that has them "
                    "(tools/export/README.md); not packaged in Debian 12; the tests that need "
                    "it skip (exit 77)",
    "open_clip": "open_clip checkpoints, as for transformers; not packaged in Debian 12",
    "timm": "an optional cross-check in export_slip.py (guarded); not packaged in Debian 12",
}

# Commands used only when present, with the reason.
EXEMPT_COMMANDS = {
    "sudo": "tools/install_deps.sh uses it only when it is there and the user is not root "
            "(`command -v sudo` guards it); a fresh root runs the script as root",
    "debootstrap": "tools/fresh_root.sh runs on the CI host, not in the fresh root, and installs "
                   "it there itself",
}

# CMake cache entries that record what CMake merely saw, with the reason.
EXEMPT_CMAKE_ENTRIES = {
    "RETRACE_CCACHE": "optional: the build launches the compiler through ccache only when found",
    "CMAKE_LINKER": "recorded, not used: the compiler driver links with binutils' ld",
}

# Words at a command position in test sources and scripts that are not commands.
SHELL_WORDS = {"then", "do", "else", "elif", "fi", "done", "esac", "in", "if", "while", "until",
               "for", "case", "function", "select", "!", "{", "}", "[[", "]]", "time", "coproc"}
# Commands that run the next word as a command (after their own options).
WRAPPERS = {"exec", "command", "nice", "env", "nohup", "sudo", "timeout", "xargs", "taskset",
            "runuser", "time", "stdbuf", "setsid", "ionice", "retry"}
# A wrapper's options that take a value (the value is not the command).
WRAPPER_VALUE_OPTIONS = {"-u", "-g", "-c", "-s", "-k", "-n", "--user", "--group"}


class Finding:
    def __init__(self, what, where, message):
        self.what, self.where, self.message = what, where, message

    def __str__(self):
        return "%s (%s): %s" % (self.what, self.where, self.message)


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


# --- packages -------------------------------------------------------------------------------

def listed_packages(drop):
    out = run([os.path.join(REPO, "tools", "install_deps.sh"), "--list"], check=True).stdout
    return [p for p in out.split() if p not in drop]


def alternatives(packages):
    """Packages install_deps.sh accepts in place of a listed one (a kubectl from the Kubernetes
    repository for kubernetes-client): a command this machine has from one of them is there."""
    out = run([os.path.join(REPO, "tools", "install_deps.sh"), "--alternatives"],
              check=True).stdout
    pairs = [line.split() for line in out.splitlines() if line.strip()]
    return {other for listed, other in pairs if listed in packages}


def strip_arch(name):
    return name.split(":", 1)[0].strip("<>")


def package_closure(packages):
    """The packages and everything they depend on (pre-depends included, recommends not)."""
    out = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
               "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + packages)
    if out.returncode != 0:
        sys.exit("check_install_deps: apt-cache depends failed (are the package lists there? "
                 "run apt-get update): " + out.stderr.strip())
    closure = set()
    for line in out.stdout.splitlines():
        if line and not line[0].isspace():
            closure.add(strip_arch(line))
        else:
            # "  Depends: foo" and "  |Depends: foo" lines name packages too; a virtual package's
            # providers are listed on their own, indented lines.
            m = re.match(r"\s*\|?(?:Depends|PreDepends):\s*(\S+)", line)
            if m:
                closure.add(strip_arch(m.group(1)))
            elif re.match(r"^\s{4}\S", line):
                closure.add(strip_arch(line.strip()))
    return closure


def base_packages():
    """What every minbase root has: the packages of Priority required (and apt)."""
    out = run(["dpkg-query", "-W", "-f", "${Package}\t${Priority}\t${Essential}\n"]).stdout
    base = {"apt"}
    for line in out.splitlines():
        name, priority, essential = (line.split("\t") + ["", ""])[:3]
        if priority == "required" or essential == "yes":
            base.add(name)
    return base


def owners(paths):
    """{path: package} for each path dpkg knows (through symlinks and the /usr merge)."""
    candidates = {}
    for path in paths:
        tries = [path, os.path.realpath(path)]
        for p in list(tries):
            for a, b in (("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/"), ("/usr/lib/", "/lib/")):
                if p.startswith(a):
                    tries.append(b + p[len(a):])
                elif p.startswith(b):
                    tries.append(a + p[len(b):])
        candidates[path] = tries
    all_paths = sorted({p for tries in candidates.values() for p in tries})
    found = {}
    if all_paths:
        out = run(["dpkg", "-S"] + all_paths).stdout
        for line in out.splitlines():
            m = re.match(r"(.+?): (/.*)$", line)
            if m and not m.group(1).startswith("diversion by"):
                found.setdefault(m.group(2), [strip_arch(p.strip()) for p in m.group(1).split(",")])
    return {path: next((found[p] for p in tries if p in found), None)
            for path, tries in candidates.items()}


# --- files ----------------------------------------------------------------------------------

def tracked_files():
    """The project's files: git's view (tracked, and untracked but not ignored), or without git
    (an unpacked archive) every file outside build folders."""
    out = run(["git", "-C", REPO, "ls-files", "-co", "--exclude-standard"])
    if out.returncode == 0:
        return [f for f in out.stdout.splitlines() if os.path.isfile(os.path.join(REPO, f))]
    files = []
    for top, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build")) and d != "__pycache__"]
        files += [os.path.relpath(os.path.join(top, n), REPO) for n in names]
    return files


def exempt(path):
    return any(path == e or (e.endswith("/") and path.startswith(e)) for e in EXEMPT_FILES)


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8", errors="replace") as f:
        return f.read()


# --- Python imports -------------------------------------------------------------------------

def optional_import_lines(tree):
    """Lines of imports inside a try whose handler catches ImportError (optional imports)."""
    lines = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = set()
        for h in node.handlers:
            for n in ast.walk(h.type) if h.type is not None else []:
                if isinstance(n, ast.Name):
                    caught.add(n.id)
        if caught & {"ImportError", "ModuleNotFoundError"}:
            for stmt in node.body:
                for n in ast.walk(stmt):
                    if isinstance(n, (ast.Import, ast.ImportFrom)):
                        lines.add(n.lineno)
    return lines


def python_imports(path, text):
    """(module, line) for each absolute import that is not optional."""
    tree = ast.parse(text, filename=path)
    optional = optional_import_lines(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if node.lineno in optional:
            continue
        for name in names:
            yield name.split(".")[0], node.lineno


def python_commands(path, text):
    """(command, line) for the program each subprocess / os.system call runs, when literal."""
    tree = ast.parse(text, filename=path)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        owner = getattr(getattr(f, "value", None), "id", "")
        if not ((owner == "subprocess" and name in ("run", "call", "check_call", "check_output",
                                                    "Popen"))
                or (owner == "os" and (name == "system" or name.startswith("exec")))):
            continue
        if not node.args:
            continue
        first = node.args[0]
        if isinstance(first, (ast.List, ast.Tuple)) and first.elts:
            first = first.elts[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            for word, _ in shell_commands(first.value):
                yield word, node.lineno


# --- shell commands -------------------------------------------------------------------------

def shell_commands(text):
    """(word, line) for the words at command positions of a shell text (a best effort, not a
    shell parser: enough for this project's scripts, recipes and test fragments)."""
    words = []
    state = {"skip_until": None, "in_case": False}
    lineno = 0
    logical, first_line = "", 1
    heredoc = None  # the word that ends the here-document being skipped
    for raw in text.splitlines() + [""]:
        lineno += 1
        if heredoc is not None:
            if raw.strip() == heredoc:
                heredoc = None
            continue
        if not logical:
            first_line = lineno
        if raw.endswith("\\"):
            logical += raw[:-1] + " "
            continue
        logical += raw
        line = re.sub(r"(^|\s)#.*", "", logical)  # comments (not ${#x})
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if m:
            heredoc = m.group(1)
        line = re.sub(r"\$\(\(.*?\)\)", "0", line)  # arithmetic
        logical = ""
        for m in re.finditer(r"\$\(\s*([A-Za-z0-9_./+-]+)|`\s*([A-Za-z0-9_./+-]+)", line):
            words.append((m.group(1) or m.group(2), first_line))
        words += [(w, first_line) for w in _line_commands(line, state)]
    return words


def _line_commands(line, state):
    """The command words of one logical line; `state` carries for/case/array context on."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""  # stripped already; a # inside a word (${#x}) is no comment
        tokens = list(lexer)
    except ValueError:  # an unterminated quote (a fragment, or a string over several lines)
        tokens = line.split()
    words = []
    at_command = True   # the next word is a command
    wrapped = False     # ... after a wrapper such as nice, whose options come first
    skip_value = False  # ... and the next word is the value of the wrapper's option
    for i, tok in enumerate(tokens):
        skip = state["skip_until"]
        if skip == ")" and state["in_case"] and tok == "esac":
            state["in_case"], state["skip_until"] = False, None
            at_command = True
            continue
        if skip is not None:
            if tok == skip or (skip == ")" and (tok.endswith(")") or
                                                ")" in tok and all(c in "();&|" for c in tok))):
                # after `case x in` come patterns, each up to its ")"
                state["skip_until"] = ")" if tok == "in" and state["in_case"] else None
                at_command = True
            continue
        if tok and all(c in "();&|<>" for c in tok):
            if tok == ";;" and state["in_case"]:
                state["skip_until"] = ")"
            at_command = tok not in ("<", ">", ">>", "<<", "<&", ">&", ")")
            continue
        if not at_command:
            continue
        if tok in ("for", "select"):
            state["skip_until"] = "do"
            continue
        if tok == "case":
            state["in_case"], state["skip_until"] = True, "in"
            continue
        if tok == "esac":
            state["in_case"] = False
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\+?=$", tok) and tokens[i + 1:i + 2] == ["("]:
            state["skip_until"] = ")"  # an array assignment
            continue
        if tok in SHELL_WORDS or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\+?=", tok):
            continue
        if wrapped and skip_value:
            skip_value = False  # the value of the wrapper's option (nice -n 10, runuser -u x)
            continue
        if wrapped and (tok.startswith("-") or re.match(r"^[0-9.]+[smhd]?$", tok)):
            if tok == "-v" and tokens[i - 1] == "command":
                at_command = False  # `command -v X` asks whether X exists
            if tok in WRAPPER_VALUE_OPTIONS:
                skip_value = True
            continue
        words.append(tok)
        wrapped = tok in WRAPPERS
        at_command = wrapped
    return words


def make_variables(text):
    values = {}
    for m in re.finditer(r"^([A-Z_]+)\s*[?:]?=\s*(\S+)\s*$", text, re.M):
        values[m.group(1)] = m.group(2)
    return values


def makefile_lines(text):
    """(line, first line number) of the recipes: logical lines (backslash-continued) that start
    with a tab, with the Makefile's simple variables substituted."""
    variables = make_variables(text)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        first, logical = i + 1, lines[i]
        while logical.endswith("\\") and i + 1 < len(lines):
            i += 1
            logical = logical[:-1] + " " + lines[i].strip()
        i += 1
        if not logical.startswith("\t"):
            continue
        line = logical.strip().lstrip("@-")
        for _ in range(5):  # variables defined by variables
            line = re.sub(r"\$\(([A-Z_]+)\)",
                          lambda m: variables.get(m.group(1), "$" + m.group(1)), line)
        yield line, first


def makefile_commands(text):
    """(command, line) in the recipes."""
    for line, first in makefile_lines(text):
        for word, _ in shell_commands(line):
            yield word, first


def cmake_configurations(text):
    """(cmake arguments, line) of each `cmake -S . -B DIR ...` configure step in the recipes,
    without -B DIR (the caller picks the folder) and without redirections."""
    for line, first in makefile_lines(text):
        if not line.startswith("cmake -S "):
            continue
        words = [w for w in shlex.split(line.split(">")[0])[1:]]
        args, skip = [], False
        for w in words:
            if skip:
                skip = False
            elif w == "-B":
                skip = True
            elif w.startswith("$"):  # a variable with no value in the Makefile (CMAKE_FLAGS)
                continue
            else:
                args.append(w)
        yield args, first


def cmake_cache_paths(text):
    """(entry, path) of the files and folders a configure step found: CMakeCache.txt's
    FILEPATH and PATH entries that hold an absolute path (not the install prefixes)."""
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.+-]+):(FILEPATH|PATH)=(/.*)$", line)
        if (m and not m.group(1).startswith("CMAKE_INSTALL") and m.group(1) not in EXEMPT_CMAKE_ENTRIES
                and not m.group(3).endswith("-NOTFOUND")):
            yield m.group(1), m.group(3)


def cmake_found(makefile):
    """{path: [(entry, "Makefile:N"), ...]} over every configure step of the Makefile, each run
    in a temporary folder (seconds each), and the failures as Findings."""
    found, findings = {}, []
    with tempfile.TemporaryDirectory(prefix="check-install-deps-") as tmp:
        for n, (args, line) in enumerate(cmake_configurations(read(makefile))):
            where = "%s:%d" % (makefile, line)
            build = os.path.join(tmp, str(n))
            r = run(["cmake"] + args + ["-B", build], cwd=REPO)
            if r.returncode != 0:
                findings.append(Finding("CMake configure step", where,
                                        "fails on this machine: " + (r.stderr or r.stdout)[-600:]))
                continue
            for entry, path in cmake_cache_paths(read(os.path.join(build, "CMakeCache.txt"))):
                if path.startswith((tmp, REPO)) or not os.path.exists(path):
                    continue
                found.setdefault(path, []).append((entry, where))
    return found, findings


def cmake_commands(text):
    variables = {m.group(1): m.group(2)
                 for m in re.finditer(r"set\((\w+)\s+(/\S+)\)", text)}
    for m in re.finditer(r"\bCOMMAND\s+(\S+)", text):
        word = re.sub(r"\$\{(\w+)\}", lambda v: variables.get(v.group(1), "$" + v.group(1)),
                      m.group(1))
        yield word, text.count("\n", 0, m.start()) + 1


def cxx_commands(text):
    """Commands in the C++ strings a test runs: the literals of std::system's argument, or of the
    statements that build the variable it is given (`command = absl::StrCat(...)`)."""
    names = set(re.findall(r"(?:std::system|popen|RunShell)\(\s*(\w+)", text))
    spans = []
    for m in re.finditer(r"(?:std::system|popen|RunShell)\(", text):
        depth, end = 1, m.end()  # the call's argument list, parentheses balanced
        while end < len(text) and depth > 0:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        spans.append((m.start(), end))
    for name in names:
        for m in re.finditer(r"\b%s\s*=[^=]" % re.escape(name), text):
            depth, end = 0, m.end()
            while end < len(text) and not (text[end] == ";" and depth == 0):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            spans.append((m.start(), end))
    previous_end = ""
    for start, end in spans:
        for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', text[start:end]):
            literal = m.group(1)
            lineno = text.count("\n", 0, start + m.start()) + 1
            before = text[:start + m.start()].rstrip()[-1:]
            after_separator = re.search(r"(;|&&|\|\||\||\\n)\s*$", previous_end) is not None
            previous_end = literal
            if not literal.strip() or literal.lstrip().startswith("-"):
                continue
            if before not in ("(", "=", ";", "{", "?", ":") and not after_separator:
                # It continues an expression (StrCat(dir, "/x.log")): its start is an argument.
                literal = "_ " + literal
            for word, _ in shell_commands(literal.replace("\\n", "\n")):
                if word != "_":
                    yield word, lineno
    if spans:
        # Programs named by absolute path anywhere in a file that runs commands.
        for m in re.finditer(r'"(/(?:usr/)?s?bin/[\w.+-]+|/usr/lib/[\w./+-]+/bin/[\w.+-]+)"', text):
            yield m.group(1), text.count("\n", 0, m.start()) + 1


# --- the check ------------------------------------------------------------------------------

def builtins():
    out = run(["bash", "-c", "compgen -b; compgen -k"]).stdout
    return set(out.split()) | {"."}


def is_project_path(word):
    return (word.startswith(("$", "./", "../", "build", "tools/", "tests/", "bench/", "fuzz/"))
            or "/" in word and not word.startswith("/")
            or word.startswith(("retrace", "%")))


def shell_functions(text):
    return set(re.findall(r"^\s*(?:function\s+)?([\w-]+)\s*\(\)", text, re.M))


def collect(files):
    imports, commands = [], []
    for path in files:
        if exempt(path):
            continue
        base = os.path.basename(path)
        try:
            if path.endswith(".py"):
                text = read(path)
                imports += [(m, "%s:%d" % (path, n)) for m, n in python_imports(path, text)]
                commands += [(c, "%s:%d" % (path, n)) for c, n in python_commands(path, text)]
            elif path.endswith(".sh") or path in (".ci/run",):
                text = read(path)
                functions = shell_functions(text)
                # and those of the project's scripts it sources (source "$repo/tools/x.sh")
                for sourced in re.findall(r'^\s*(?:source|\.)\s+"?\$\{?\w+\}?/([\w/.-]+\.sh)"?',
                                          text, re.M):
                    if os.path.exists(os.path.join(REPO, sourced)):
                        functions |= shell_functions(read(sourced))
                commands += [(c, "%s:%d" % (path, n)) for c, n in shell_commands(text)
                             if c not in functions]
            elif base == "Makefile":
                commands += [(c, "%s:%d" % (path, n)) for c, n in makefile_commands(read(path))]
            elif base == "CMakeLists.txt" and path.startswith("tests/"):
                commands += [(c, "%s:%d" % (path, n)) for c, n in cmake_commands(read(path))]
            elif path.startswith(("tests/", "fuzz/")) and path.endswith((".cc", ".h")):
                text = read(path)
                # Only sources that start programs; their other literals are data, so a word
                # there counts only if it names an installed program (cxx_words).
                found = list(cxx_commands(text))
                commands += [(c, "%s:%d" % (path, n)) for c, n in found]
        except SyntaxError as e:
            sys.exit("check_install_deps: cannot parse %s: %s" % (path, e))
    return imports, commands


def local_modules(files):
    names = set()
    for f in files:
        if f.endswith(".py"):
            names.add(os.path.basename(f)[:-3])
            parts = f.split("/")[:-1]
            names.update(parts)
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drop", action="append", default=[],
                    help="check as if tools/install_deps.sh did not list this package")
    ap.add_argument("--verbose", action="store_true", help="print every module and command")
    ap.add_argument("--no-cmake", action="store_true",
                    help="skip the Makefile's CMake configure steps (seconds each)")
    a = ap.parse_args()

    packages = listed_packages(set(a.drop))
    allowed = package_closure(packages) | base_packages() | alternatives(packages)
    files = tracked_files()
    imports, commands = collect(files)
    local = local_modules(files)
    stdlib = set(sys.stdlib_module_names)
    shell_builtins = builtins()
    findings = []

    # Python modules: where /usr/bin/python3 (the interpreter the project runs) loads them from.
    module_uses = {}
    for module, where in imports:
        if module in stdlib or module in local or module == "__future__":
            continue
        module_uses.setdefault(module, []).append(where)
    module_paths = {}
    for module, uses in sorted(module_uses.items()):
        if module in EXEMPT_MODULES:
            continue
        spec = importlib.util.find_spec(module)
        if spec is None:
            findings.append(Finding(
                "Python module '%s'" % module, uses[0],
                "not installed; add its Debian package (usually python3-%s) to "
                "tools/install_deps.sh" % module.lower()))
            continue
        origin = spec.origin if spec.origin not in (None, "namespace") else \
            list(spec.submodule_search_locations)[0]
        module_paths[module] = origin

    # Commands: found on a fresh root's PATH, or given as absolute paths.
    command_uses = {}
    for word, where in commands:
        if (word in shell_builtins or word in EXEMPT_COMMANDS or is_project_path(word)
                or not re.match(r"^[\w./+-]+$", word)):
            continue
        command_uses.setdefault(word, []).append(where)
    command_paths = {}
    for word, uses in sorted(command_uses.items()):
        path = word if word.startswith("/") else shutil.which(word, path=FRESH_PATH)
        if path is None or not os.path.exists(path):
            findings.append(Finding(
                "command '%s'" % word, uses[0],
                "not installed; add the Debian package that provides it to tools/install_deps.sh "
                "(apt-file search bin/%s)" % os.path.basename(word)))
            continue
        command_paths[word] = path

    # What CMake finds (libraries, headers, package configs, compilers) in each configure step
    # of the Makefile: a library only clang's build needs is found by no other check.
    cmake_paths, cmake_uses = {}, {}
    if not a.no_cmake:
        found, failed = cmake_found("Makefile")
        findings += failed
        for path, uses in found.items():
            cmake_paths[path] = path
            cmake_uses[path] = ["%s (%s)" % (where, entry) for entry, where in uses]

    owner = owners(list(module_paths.values()) + list(command_paths.values()) +
                   list(cmake_paths.values()))
    for kind, paths, uses in (("Python module", module_paths, module_uses),
                              ("command", command_paths, command_uses),
                              ("file CMake found", cmake_paths, cmake_uses)):
        for name, path in sorted(paths.items()):
            pkgs = owner.get(path)
            where = ", ".join(uses[name][:3]) + (" and %d more" % (len(uses[name]) - 3)
                                                 if len(uses[name]) > 3 else "")
            if a.verbose:
                print("%s '%s' -> %s (%s), used in %s" % (kind, name, path, pkgs, where))
            if pkgs is None:
                findings.append(Finding(
                    "%s '%s'" % (kind, name), where,
                    "%s belongs to no Debian package (installed by hand?); install it from a "
                    "Debian package listed in tools/install_deps.sh" % path))
            elif not set(pkgs) & allowed:
                findings.append(Finding(
                    "%s '%s'" % (kind, name), where,
                    "%s comes from the Debian package %s, which tools/install_deps.sh does not "
                    "install (directly or as a dependency): add %s to its list"
                    % (path, " or ".join(pkgs), pkgs[0])))

    print("check_install_deps: %d packages listed, %d in their closure; %d Python modules, %d "
          "commands and %d files CMake found checked" % (len(packages), len(allowed),
                                                         len(module_paths), len(command_paths),
                                                         len(cmake_paths)))
    if findings:
        print("check_install_deps: %d problem(s): a fresh Debian 12 machine would lack these:"
              % len(findings))
        for f in findings:
            print("  " + str(f))
        return 1
    print("check_install_deps: everything the project runs comes from tools/install_deps.sh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
