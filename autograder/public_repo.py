"""The public student repository, named in one place: ``repository`` of ``_config.yml``.

Students see only what ``make publish`` builds (:mod:`autograder.publish`): a
repository of their own (exercises, kit, Binder configuration) and the book as a
static site. Jupyter Book takes its repository, issue and launch buttons from
``repository.url`` and ``repository.branch``; the students' README, the kit's
README and the CI workflow take them from here. The instructors' repository (this
one, private) is never named in anything students get: tests/test_publish.py
scans for it.
"""
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "_config.yml"
#: The instructors' repository, which nothing published may name or link.
INSTRUCTORS_REPOSITORY = "rnn-course/rnns-from-scratch"


@dataclass(frozen=True)
class PublicRepository:
    """owner/name and branch of the students' repository on GitHub."""

    owner: str
    name: str
    branch: str

    @property
    def slug(self):
        return f"{self.owner}/{self.name}"

    @property
    def url(self):
        return f"https://github.com/{self.slug}"

    @property
    def site_url(self):
        """Where the book is served: the repository's GitHub Pages."""
        return f"https://{self.owner}.github.io/{self.name}/"

    def binder_url(self, path=None):
        """mybinder.org's launch link for the repository (opening ``path`` in JupyterLab)."""
        url = f"https://mybinder.org/v2/gh/{self.slug}/{self.branch}"
        return url + (f"?urlpath=lab/tree/{path}" if path else "")


def public_repository(config=CONFIG):
    """The PublicRepository named by ``repository.url`` and ``repository.branch`` of the book's config."""
    repository = yaml.safe_load(Path(config).read_text(encoding="utf8"))["repository"]
    parts = urlsplit(repository["url"])
    owner_name = parts.path.strip("/").split("/")
    if parts.netloc != "github.com" or len(owner_name) != 2:
        raise ValueError(f"{config}: repository.url must be https://github.com/OWNER/NAME, got {repository['url']!r}")
    public = PublicRepository(*owner_name, repository.get("branch", "main"))
    if public.slug.lower() == INSTRUCTORS_REPOSITORY.lower():
        raise ValueError(f"{config}: repository.url names the instructors' repository; name the students' one")
    return public
