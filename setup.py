"""The optional compiled parts of the package; everything else is in pyproject.toml.

Both extensions only make bow inference faster; the package gives the same results
without them (NumPy and ``Doc.to_array``), so each is ``optional``: an install without a
compiler, or without Cython, still succeeds.

* ``textcat_kit._speedups`` (C): n-gram hashing, tf-idf values and the sparse linear
  layer for a batch, and the ``doc.cats`` / decided-labels writers. ``-ffp-contract=off``
  keeps every float operation as written (no fused multiply-add), so the results equal
  the NumPy path's to the bit.
* ``textcat_kit._doc_attrs`` (Cython, C++): a batch's token attributes without a
  ``Doc.to_array`` call per doc. Needs Cython, NumPy and spaCy's ``.pxd`` files at build
  time (``[build-system] requires``).
"""

from setuptools import Extension, setup

extensions = [
    Extension(
        "textcat_kit._speedups",
        sources=["components/textcat_kit/_speedups.c"],
        extra_compile_args=["-O3", "-ffp-contract=off"],
        optional=True,
    )
]
try:
    import numpy
    from Cython.Build import cythonize
except ImportError:  # an install without Cython: Doc.to_array per doc
    pass
else:
    extensions += cythonize(
        [
            Extension(
                "textcat_kit._doc_attrs",
                sources=["components/textcat_kit/_doc_attrs.pyx"],
                language="c++",
                include_dirs=[numpy.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=["-O3"],
                optional=True,
            )
        ],
        quiet=True,
    )

setup(ext_modules=extensions)
