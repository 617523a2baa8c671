"""The public side (``make publish``, dist/public) as students and Binder meet it.

Two trees are checked: a fresh build of the students' repository and the kit
(``autograder.publish.build(..., site=False)`` into a temporary folder), and
dist/public as ``make publish`` left it, site included (``make test`` runs it before
the tests; skipped when it is absent, failed on CI). In both: no file of
solutions/, autograder/ or tests/, no line of a solution cell or of the reference
implementation, no hidden test or seed, no mention of the instructors' repository;
every repository and launch link of the site points at the students' repository;
repo2docker's dry run of the students' repository installs the kit and Jupyter on
Python >= 3.11 and copies nothing else. Also the CI workflow that publishes, and the
home page's table of what only the book's build can run.
"""
import ast
import hashlib
import html
import io
import re
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import yaml

from autograder import publish
from autograder.public_repo import INSTRUCTORS_REPOSITORY, public_repository
from browser_support import parse_links_and_ids, toc_pages
from leaks import INSTRUCTOR_FOLDERS, forbidden_lines, hidden_specs, hidden_test_lines, leaks, readable_texts
from submissions import REPO
from ci import unavailable

#: Its module-scoped fixture builds the public side once: every test of the module on one worker.
pytestmark = pytest.mark.xdist_group("test_publish")

PUBLIC = public_repository()
#: The instructors' repository named anywhere (not as the prefix of a longer name).
INSTRUCTORS = re.compile(rf"{re.escape(INSTRUCTORS_REPOSITORY)}(?![\w.-])", re.I)
#: Top level of the students' repository, and nothing more.
REPO_TOP = {"README.md", "NOTICE.md", ".gitignore", "binder", "exercises", "kit"}
EXERCISES = [p["doc"] for p in toc_pages() if p["caption"] == "Exercises"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return publish.build(tmp_path_factory.mktemp("publish") / "public", site=False)


@pytest.fixture(scope="module")
def built():
    if not (publish.DEFAULT_DEST / "site" / "index.html").is_file():
        unavailable("dist/public/site is missing", "make publish (`make test` runs it first)")
    return publish.DEFAULT_DEST


class Text(HTMLParser):
    """The text of an HTML page, tags taken out (highlighted code becomes plain code again)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def page_text(markup):
    parser = Text()
    parser.feed(markup)
    return "".join(parser.parts)


def members(root):
    """(name, bytes) of every file under root, zips unpacked one level (readable_texts goes on)."""
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            yield str(path.relative_to(root)), path.read_bytes()


def texts(root):
    """(name, text) of everything in ``root``: HTML also as its text without tags."""
    for name, data in members(root):
        for member, text in readable_texts(name, data):
            yield member, text
            if member.endswith(".html"):
                yield f"{member} (text)", html.unescape(page_text(text))


def instructor_hashes():
    hashes = {}
    for folder in INSTRUCTOR_FOLDERS:
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.stat().st_size > 64:
                hashes[hashlib.sha256(path.read_bytes()).hexdigest()] = path.relative_to(REPO)
    return hashes


def zip_names(name, data):
    """Names of every member of nested zips."""
    if name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.namelist():
                yield f"{name}/{member}"
                yield from zip_names(f"{name}/{member}", z.read(member))


@pytest.mark.parametrize("which", ["fresh", "built"])
def test_nothing_of_the_instructors_is_published(request, which):
    root = request.getfixturevalue(which)
    copies = instructor_hashes()
    names = []
    for name, data in members(root):
        names += [name, *zip_names(name, data)]
        assert hashlib.sha256(data).hexdigest() not in copies, f"{name} is a copy of {copies[hashlib.sha256(data).hexdigest()]}"
    for name in names:
        parts = set(Path(name).parts)
        assert not parts & set(INSTRUCTOR_FOLDERS), f"{name}: a folder of the instructors' repository"
    bad_lines, hidden_lines, specs = forbidden_lines(), hidden_test_lines(), hidden_specs()
    assert len(bad_lines) > 100 and len(hidden_lines) > 20
    scanned = 0
    for name, text in texts(root):
        scanned += 1
        found = leaks(name, text, bad_lines, hidden_lines, specs)
        assert not found, found[:3]
        assert not INSTRUCTORS.search(text), f"{name} names the instructors' repository"
        assert "autograder/reference" not in text and "solutions/" not in text, name
    assert scanned > (300 if which == "built" else 40), scanned


def test_the_scan_finds_what_a_page_or_a_zip_gives_away(tmp_path):
    """The reader above sees a solution line through syntax highlighting, a hidden case in a zip."""
    line = sorted(forbidden_lines())[0]
    highlighted = "".join(f'<span class="n">{html.escape(word)}</span> ' for word in line.split(" "))
    (tmp_path / "page.html").write_text(f"<pre>{highlighted.rstrip()}</pre>")
    case = sorted(hidden_test_lines())[0]
    with zipfile.ZipFile(tmp_path / "kit.zip", "w") as z:
        z.writestr("inner/notes.txt", case)
    found = [f for name, text in texts(tmp_path)
             for f in leaks(name, text, forbidden_lines(), hidden_test_lines(), hidden_specs())]
    assert any("page.html (text)" in f and "solution or reference line" in f for f in found), found
    assert any("kit.zip/inner/notes.txt" in f and "hidden" in f for f in found), found


def test_the_students_repository_holds_the_exercises_the_kit_and_binder(fresh):
    repo = fresh / "repo"
    assert {p.name for p in repo.iterdir()} == REPO_TOP
    released = sorted(p.relative_to(REPO) for p in (REPO / "exercises").rglob("*.ipynb"))
    assert sorted(p.relative_to(repo) for p in (repo / "exercises").rglob("*.ipynb")) == released
    for path in released:
        assert (repo / path).read_bytes() == (REPO / path).read_bytes(), path
    data = repo / "kit" / "rnnkit" / "data"
    assert sorted(p.name for p in data.iterdir()) == ["NOTICE.md", "pydoc.json", "tang300.json"]
    assert (repo / "NOTICE.md").read_text() == (data / "NOTICE.md").read_text()
    notice = " ".join((repo / "NOTICE.md").read_text().split())
    assert "public domain" in notice and "GNU General Public License" in notice and "PSF License" in notice
    assert not (repo / "binder" / "postBuild").exists()


def urls(text):
    return re.findall(r"https?://[^\s)>\]\"'`]+", text)


def test_readmes_point_at_the_students_repository_and_site(fresh):
    with zipfile.ZipFile(fresh / "student-kit.zip") as kit:
        kit_readme = kit.read("README.md").decode()
    for readme in (kit_readme, (fresh / "repo" / "README.md").read_text(), (REPO / "kit" / "README.md").read_text()):
        for url in urls(readme):
            assert url.startswith((PUBLIC.url, PUBLIC.site_url, PUBLIC.binder_url())), url
    for readme in (kit_readme, (fresh / "repo" / "README.md").read_text()):
        assert PUBLIC.site_url in readme and PUBLIC.binder_url() in readme
        assert "py -m venv .venv" in readme and "python3 -m venv .venv" in readme
        assert "externally-managed-environment" in readme and "3.10 to 3.13" in readme
        assert "When `check` is missing" in readme


# ------------------------------------------------------------------ the site


def site_pages(built):
    return sorted((built / "site").rglob("*.html"))


def test_the_site_leaves_out_the_instructors_page(built):
    site = built / "site"
    assert (site / "index.html").is_file() and not (site / "book" / "instructors.html").exists()
    assert not list(site.rglob("instructors*")), list(site.rglob("instructors*"))
    assert "book/instructors" not in (site / "searchindex.js").read_text()
    for page in site_pages(built):
        hrefs, _ = parse_links_and_ids(page.read_text())
        assert not [h for h in hrefs if "instructors" in h], page


def test_every_repository_and_launch_link_points_at_the_students_repository(built):
    found = {"repository": 0, "issues": 0}
    for page in site_pages(built):
        hrefs, _ = parse_links_and_ids(page.read_text())
        for href in hrefs:
            parts = urlsplit(href)
            path = parts.path.strip("/").split("/")
            if parts.netloc.endswith("github.com") and path[0].lower() == PUBLIC.owner.lower():
                assert path[1] == PUBLIC.name, f"{page.name}: {href}"
                found["repository"] += href.rstrip("/") == PUBLIC.url
                found["issues"] += href.startswith(f"{PUBLIC.url}/issues/new")
            if "binder" in parts.netloc or parts.path.startswith("/v2/gh/"):
                assert href.startswith(PUBLIC.binder_url() + "?"), f"{page.name}: {href}"
    # The repository and issue buttons are on every page.
    assert found["repository"] >= len(site_pages(built)) - 3 and found["issues"] >= len(EXERCISES), found


@pytest.mark.parametrize("doc", EXERCISES)
def test_an_exercise_page_launches_its_notebook_in_the_students_repository(built, doc):
    page = built / "site" / f"{doc}.html"
    hrefs, _ = parse_links_and_ids(page.read_text())
    launch = PUBLIC.binder_url(f"{doc}.ipynb")
    assert launch in hrefs, [h for h in hrefs if "binder" in h]
    assert (built / "repo" / f"{doc}.ipynb").read_bytes() == (REPO / f"{doc}.ipynb").read_bytes()
    kits = [h for h in hrefs if h.endswith("student-kit.zip")]
    assert kits, f"{doc}: no link to the student kit"
    target = Path(urlsplit(urljoin(f"http://site/{doc}.html", kits[0])).path.lstrip("/"))
    assert (built / "site" / target).read_bytes() == (built / "student-kit.zip").read_bytes()


# ------------------------------------------------------------------ Binder


def test_repo2docker_builds_the_students_repository_with_the_kit_only(fresh):
    """repo2docker's own dry run (no Docker, no network): the Dockerfile it would build."""
    r2d = Path(sys.executable).parent / "jupyter-repo2docker"
    run = subprocess.run([str(r2d), "--no-build", "--debug", str(fresh / "repo")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    dockerfile = run.stdout
    # The lock file of the Python environment, its name escaped: environment.py-3.11-linux-64.lock
    locks = re.findall(r"environment-2epy-2d3-2e(\d+)-2dlinux-2d64-2elock", dockerfile)
    chosen = re.findall(r"Building conda environment for python=3\.(\d+)", run.stderr)
    assert locks and locks == chosen[:1] * len(locks), (locks, run.stderr)
    assert int(locks[0]) >= 11
    # The repository's own steps: copy the repository, pip install binder/requirements.txt, nothing else.
    copies = re.findall(r"^COPY --chown=\S+ (src/\S*) ", dockerfile, flags=re.M)
    assert copies == ["src/binder/requirements.txt", "src/"], copies
    repo_runs = [line for line in dockerfile.splitlines() if line.startswith("RUN") and "REPO_DIR" not in line
                 and ("binder" in line or "postBuild" in line or "apt" in line and "apt-get -qq update" not in line)]
    assert repo_runs == ['RUN ${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r "binder/requirements.txt"'], \
        repo_runs
    # What `src/` holds: the students' repository, nothing of the instructors'.
    assert {p.name for p in (fresh / "repo").iterdir()} == REPO_TOP
    requirements = [line.strip() for line in (fresh / "repo" / "binder" / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    names = {re.split(r"[=<>!~\[ ]", line)[0].lower() for line in requirements}
    assert names == {"./kit", "numpy", "matplotlib", "threadpoolctl", "ipykernel"}, names
    assert all("==" in line for line in requirements if line != "./kit"), requirements


# ------------------------------------------------------------------ CI


def test_the_ci_workflow_builds_scans_then_pushes():
    workflow = yaml.safe_load((REPO / "publish" / "workflow.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))
    assert "workflow_dispatch" in triggers
    (job,) = workflow["jobs"].values()
    assert job["timeout-minutes"] and job["runs-on"].startswith("ubuntu-")
    steps = job["steps"]
    assert all(("uses" in s) != ("run" in s) for s in steps), steps
    assert all(re.fullmatch(r"[\w-]+/[\w-]+@v\d+", s["uses"]) for s in steps if "uses" in s)
    runs = [s.get("run", "") for s in steps]
    order = [i for i, r in enumerate(runs) if "make publish" in r] + \
            [i for i, r in enumerate(runs) if "tests/test_publish.py" in r] + \
            [i for i, r in enumerate(runs) if "git" in r and "push" in r]
    assert len(order) == 3 and order == sorted(order), "build, then scan, then push"
    push = steps[order[2]]
    assert push["env"]["DEPLOY_KEY"] == "${{ secrets.STUDENT_REPO_DEPLOY_KEY }}"
    assert "autograder.publish --print-repository" in push["run"], "the repository comes from _config.yml"
    assert "dist/public/repo" in push["run"] and "dist/public/site gh-pages" in push["run"]
    text = (REPO / "publish" / "workflow.yml").read_text()
    assert not INSTRUCTORS.search(text) and PUBLIC.slug not in text
    assert not (REPO / ".github" / "workflows" / "workflow.yml").exists()
    out = subprocess.run([sys.executable, "-m", "autograder.publish", "--print-repository"],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout.split()
    assert out == [PUBLIC.slug, PUBLIC.branch]


# ------------------------------------------------------------------ the home page


STUDENT_MODULES = set(sys.stdlib_module_names) | {"numpy", "matplotlib", "IPython", "rnnkit", "threadpoolctl"}


def chapter_imports(path):
    """Top-level modules imported by the code cells of a MyST chapter."""
    modules = set()
    for cell in re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", path.read_text(), flags=re.S | re.M):
        cell = re.sub(r"\A---\n.*?\n---\n", "", cell, flags=re.S)   # the cell's options, as YAML
        code = "\n".join(line for line in cell.splitlines() if not line.startswith((":", "%", "!")))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_the_home_page_says_what_only_the_books_build_runs():
    table = dict(re.findall(r"^\| (\d) \| (.*) \|$", (REPO / "book" / "index.md").read_text(), flags=re.M))
    chapters = sorted((REPO / "book").glob("0[1-9]_*.md"))
    assert len(chapters) == 6 and sorted(table) == [str(i) for i in range(1, 7)], table
    for path in chapters:
        needed = sorted(chapter_imports(path) - STUDENT_MODULES)
        assert table[path.name[1]] == ", ".join(f"`{m}`" for m in needed), (path.name, needed)


def test_the_hub_steps_install_the_kit_as_published(fresh, tmp_path):
    """The instructors' page's hub commands: the wheel where `unzip student-kit.zip -d /tmp/kit`
    puts it, nbgrader at the version the grader pins, every package pinned."""
    guide = (REPO / "book" / "instructors.md").read_text()
    assert "unzip student-kit.zip -d /tmp/kit" in guide
    installs = re.findall(r"sudo -E pip install ([^`\n]+)", guide)
    assert len(installs) >= 3, installs
    with zipfile.ZipFile(fresh / "student-kit.zip") as kit:
        kit.extractall(tmp_path / "kit")
    pins = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for words in installs:
        for word in words.split():
            if word.startswith("/tmp/kit/"):
                assert list((tmp_path / "kit").glob(word.removeprefix("/tmp/kit/"))), word
            elif not word.startswith("--"):
                name, _, version = word.partition("==")
                assert version, f"{word}: not pinned"
                assert pins.get(name, version) == version, f"{word}: requirements.txt pins {pins[name]}"
