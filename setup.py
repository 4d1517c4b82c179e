"""Build the C core of bayesworker: optimised, with OpenMP SIMD where the compiler has it."""

import os
import sys
import sysconfig
import tempfile

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Every C file of csrc/: the binding (module.c) and the pure-C core.  A new model family is a
# new file there and one row of the registry (csrc/registry.c); nothing to add here.
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(f for f in os.listdir(os.path.join(HERE, "csrc")) if f.endswith(".c"))


def _compiler_accepts(compiler, flag):
    """True if the compiler builds a trivial file with `flag`."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("int main(void) { return 0; }\n")
        try:
            compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    """Adds the optional flags the compiler in use understands."""

    def build_extensions(self):
        optional = ["-fopenmp-simd", "-fno-math-errno"]
        if os.environ.get("BAYESWORKER_NATIVE") == "1":
            optional.append("-march=native")
        flags = [f for f in optional if _compiler_accepts(self.compiler, f)]
        sanitize = os.environ.get("BAYESWORKER_SANITIZE")
        for ext in self.extensions:
            ext.extra_compile_args = ext.extra_compile_args + flags
            if sanitize:
                ext.extra_compile_args += [f"-fsanitize={sanitize}", "-fno-sanitize-recover=all",
                                           "-fno-omit-frame-pointer", "-O1", "-g"]
                ext.extra_link_args = ext.extra_link_args + [f"-fsanitize={sanitize}"]
        super().build_extensions()


define_macros = [("_GNU_SOURCE", None)]
extra = ["-O3", "-std=c11", "-Wall", "-Wextra"] if sys.platform != "win32" else []

setup(
    ext_modules=[
        Extension(
            "bayesworker._core",
            sources=[os.path.join("csrc", s) for s in SOURCES],
            include_dirs=["csrc", numpy.get_include()],
            define_macros=define_macros,
            extra_compile_args=extra,
            libraries=["m"] if sys.platform != "win32" else [],
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
