"""Launch buttons (Binder) on exercise pages only.

Binder's environment (binder/) holds the student kit, not torch or the book's
tooling, so a chapter launched there could not run: the button is removed from
every page that is not an exercise. Runs after sphinx-book-theme adds it (501).
"""
LAUNCH_GROUP = "launch-buttons"


def drop_launch_buttons(app, pagename, templatename, context, doctree):
    if pagename.startswith("exercises/"):
        return
    buttons = context.get("header_buttons")
    if buttons:
        buttons[:] = [b for b in buttons if b.get("label") != LAUNCH_GROUP]


def setup(app):
    app.connect("html-page-context", drop_launch_buttons, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
