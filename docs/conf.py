"""Sphinx configuration of the course website (built by docs/build_site.py)."""
import re

import nnptutor

project = "nnptutor"
author = "the nnptutor authors"
copyright = "nnptutor authors, MIT licence"
release = nnptutor.__version__

extensions = [
    "myst_nb",                 # notebooks and MyST markdown pages
    "sphinx.ext.autodoc",      # API reference from the docstrings
    "sphinx.ext.napoleon",     # numpydoc sections (Parameters, Returns, Notes)
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served with the site, no CDN
]

# the pages are the committed, executed notebooks: never execute them here
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no widget JavaScript from a CDN: widget views become notes (build_site.py)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = [
    "myst.header",  # notebooks open with a title, then go to level-3 headings
    "ref.python",   # ambiguous attribute names (n_atoms) in numpydoc type fields
]

autodoc_member_order = "bysource"
autodoc_typehints = "none"       # the docstrings state types, units and shapes
autodoc_inherit_docstrings = False  # stdlib docstrings (Executor.submit) are not numpydoc
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False

html_theme = "sphinx_book_theme"
html_title = "nnptutor: neural-network interatomic potentials"
html_context = {"default_mode": "light"}  # the theme's light/dark switch starts on light
html_theme_options = {
    "use_download_button": True,   # "download this notebook" (.ipynb) on every lecture page
    "use_fullscreen_button": False,
    "show_toc_level": 2,
}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# The docstrings are plain numpydoc written for reading in a terminal or notebook: |x| means
# an absolute value and ``lambda_`` a parameter name, which reStructuredText would read as a
# substitution and a link target. Escape both outside inline literals and math roles.
_LITERAL = re.compile(r"(``.*?``|:\w+:`.*?`|`.*?`)")
_PIPE = re.compile(r"(?<!\\)\|")
_TRAILING_UNDERSCORE = re.compile(r"(?<=\w)_(?=[\s,.;:)\]'\"]|$)")


def _escape_plain_text(line: str) -> str:
    parts = _LITERAL.split(line)
    for k in range(0, len(parts), 2):  # even parts are outside literals
        parts[k] = _TRAILING_UNDERSCORE.sub(r"\\_", _PIPE.sub(r"\\|", parts[k]))
    return "".join(parts)


def _escape_docstring(app, what, name, obj, options, lines):
    lines[:] = [_escape_plain_text(line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _escape_docstring, priority=400)  # before napoleon
