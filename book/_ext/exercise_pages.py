"""What exercise pages offer, and only they: Binder's launch button and the student kit.

* Launch buttons: Binder's environment (the students' repository, binder/) holds
  the student kit, not torch or the book's tooling, so a chapter launched there
  could not run: the button is removed from every page that is not an exercise.
* The student kit: ``student_kit_zip`` (default dist/student-kit.zip, built by
  ``make student-kit``; ``make publish`` passes its own) is copied to the site's
  root, and every exercise page's download menu links it beside the notebook.

Runs after sphinx-book-theme adds its buttons (501).
"""
import shutil
from pathlib import Path

from sphinx.errors import ConfigError

LAUNCH_GROUP = "launch-buttons"
DOWNLOAD_GROUP = "download-buttons"
KIT_NAME = "student-kit.zip"


def is_exercise(pagename):
    return pagename.startswith("exercises/")


def kit_path(app):
    path = Path(app.srcdir, app.config.student_kit_zip)
    if not path.is_file():
        raise ConfigError(f"no student kit at {path}: run `make student-kit` before building the book")
    return path


def exercise_buttons(app, pagename, templatename, context, doctree):
    buttons = context.get("header_buttons")
    if not buttons:
        return
    if not is_exercise(pagename):
        buttons[:] = [b for b in buttons if b.get("label") != LAUNCH_GROUP]
        return
    for group in buttons:
        if group.get("label") == DOWNLOAD_GROUP:
            group["buttons"].insert(1, {
                "type": "link", "url": context["pathto"](KIT_NAME, 1), "text": KIT_NAME,
                "tooltip": "Download the student kit (rnnkit and every exercise)",
                "icon": "fas fa-box", "label": "download-student-kit-button"})


def copy_kit(app, exception):
    if exception is None and app.builder.format == "html":
        shutil.copyfile(kit_path(app), Path(app.outdir, KIT_NAME))


def setup(app):
    app.add_config_value("student_kit_zip", "dist/student-kit.zip", "html")
    app.connect("builder-inited", kit_path)
    app.connect("html-page-context", exercise_buttons, priority=600)
    app.connect("build-finished", copy_kit)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
