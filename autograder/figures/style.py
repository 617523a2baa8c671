"""How every figure of the book is rendered: one resolution, one style.

Each chapter calls :func:`use_book_style` in its first cell. Figures are
PNGs at twice their display size (IPython's "retina" format: saved at
``2 * DPI`` pixels per inch, shown at ``DPI`` CSS pixels per inch), so they
stay sharp on high-density screens.
"""
import matplotlib.pyplot as plt
from matplotlib_inline.backend_inline import set_matplotlib_formats

#: CSS pixels per inch of a figure on the page (matplotlib's figure.dpi).
DPI = 100
#: Image pixels per CSS pixel.
SCALE = 2
RC = {"figure.dpi": DPI, "axes.spines.top": False,
      "axes.spines.right": False}


def use_book_style():
    """Retina PNGs and the book's rcParams, for the calling kernel."""
    set_matplotlib_formats("retina")
    plt.rcParams.update(RC)
