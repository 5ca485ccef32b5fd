"""Run our code when a host package (vissl, classy_vision, detectron2) is imported.

``import vissl_ext`` must stay light (the offline tools never load the training stack), yet every
process that goes on to use VISSL must see our compatibility fixes and registrations: a user's
script, the launcher, the workers VISSL spawns (they re-import the main module) and SLURM jobs
(unpickled on the node). :func:`install` puts a finder at the front of ``sys.meta_path``; for a
watched top-level package it asks the finders behind it for the spec and shadows that spec's
loader's ``exec_module`` (on the instance, removed again after the import, so the module keeps
its own loader): ``before`` callbacks run before the package's ``__init__``, ``after`` callbacks
once it has run. The hosts' ``__init__`` modules import nothing of themselves, so ``after`` runs
before any host code but the package's version string.

Re-entrancy: a host package is often first imported from the top of one of our own modules
(``import vissl_ext.data.video_sources`` reaches ``vissl.data``); registration then imports every
component module, and one of them importing a name from the half-initialised module would fail.
So ``after`` callbacks wait until no ``vissl_ext`` module is being imported in this thread: the
finder also counts the imports of our own modules in progress, and the outermost one to finish
runs what waited.
"""
import importlib.abc
import sys
import threading
from typing import Callable, Dict, List

_OWN = "vissl_ext."


class _HostImportFinder(importlib.abc.MetaPathFinder):
    def __init__(self, before: Dict[str, List[Callable]], after: Dict[str, List[Callable]]):
        self.before, self.after = before, after
        self._state = threading.local()  # depth (our imports in progress), pending, draining

    def _local(self):
        s = self._state
        if not hasattr(s, "depth"):
            s.depth, s.pending, s.draining, s.finding = 0, [], False, set()
        return s

    def find_spec(self, name, path, target=None):
        own = name.startswith(_OWN)
        state = self._local()
        # a finder behind this one may ask every finder, this one included (post-import patchers
        # do): answer None then, not recurse
        if (not own and name not in self.before and name not in self.after) or name in state.finding:
            return None
        spec = None
        state.finding.add(name)
        try:
            for finder in sys.meta_path[sys.meta_path.index(self) + 1:] if self in sys.meta_path else ():
                find = getattr(finder, "find_spec", None)
                spec = find(name, path, target) if find is not None else None
                if spec is not None:
                    break
        finally:
            state.finding.discard(name)
        loader = getattr(spec, "loader", None)
        # only a loader object of this one module (file loaders are): a shared one, such as a
        # class with static methods, must not be patched
        if loader is None or isinstance(loader, type) or not hasattr(loader, "exec_module"):
            return spec
        real_exec = loader.exec_module

        def exec_module(module):
            try:
                del loader.exec_module
            except AttributeError:
                pass
            for fn in self.before.get(name, ()):
                fn()
            state = self._local()
            state.depth += own
            try:
                real_exec(module)
            finally:
                state.depth -= own
            state.pending.extend(self.after.get(name, ()))
            self.run_pending()

        loader.exec_module = exec_module
        return spec

    def run_pending(self):
        """Run the waiting ``after`` callbacks, unless one of our modules is mid-import or they
        already run further up this thread's stack."""
        state = self._local()
        if state.depth or state.draining:
            return
        state.draining = True
        try:
            while state.pending:
                state.pending.pop(0)()
        finally:
            state.draining = False


_FINDER = None


def install(before: Dict[str, List[Callable]], after: Dict[str, List[Callable]]):
    """Watch the top-level packages named in ``before`` / ``after`` (once per process). For those
    already imported, both run now: the early fixes are idempotent, and late beats never."""
    global _FINDER
    if _FINDER is not None:
        return
    _FINDER = _HostImportFinder(before, after)
    sys.meta_path.insert(0, _FINDER)
    state = _FINDER._local()
    for name in sorted(set(before) | set(after)):
        if name in sys.modules:
            for fn in before.get(name, ()):
                fn()
            state.pending.extend(after.get(name, ()))
    _FINDER.run_pending()
