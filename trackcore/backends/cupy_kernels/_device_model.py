"""A strict model of CuPy's device arrays, for testing the ``cupy`` backend's data flow without a GPU.

:class:`DeviceModelRuntime` is the host emulation (:class:`~._emulate.HostRuntime`: the same ``.cu``
kernels built by g++) whose arrays are :class:`DeviceArray` objects that behave as CuPy's do where
it matters for data flow: numpy functions and operators on them give device arrays again (NEP 13
and 18, as CuPy implements them); turning one into a numpy array implicitly (``np.asarray``),
mixing it with a host numpy array in an operation, or indexing it with one raises ``TypeError``
(CuPy raises too); moving data is explicit (``xp.asarray`` of host data uploads, ``.get()`` /
``runtime.to_host`` downloads, ``int()`` / ``float()`` / ``bool()`` / ``.item()`` read one value).
Every transfer is logged in :class:`TransferLog`, so tests can check that a chain moves bulk data
only at its ends. The model says nothing about GPU arithmetic, timing or memory.
"""
from __future__ import annotations

import operator
import traceback
from dataclasses import dataclass, field

import numpy as np

from ._emulate import HostRuntime

#: Creation functions: their results live on the device.
_CREATORS = {"zeros", "empty", "ones", "full", "arange", "linspace", "eye", "identity", "indices", "tri"}
#: Functions that take host data to the device (explicit uploads, as cupy.asarray).
_UPLOADERS = {"asarray", "array", "ascontiguousarray", "asanyarray"}


@dataclass
class Transfer:
    kind: str  # "upload", "download" or "scalar"
    nbytes: int
    where: str  # the caller outside trackcore/backends, file:line


@dataclass
class TransferLog:
    """Transfers between host and the emulated device, in order."""

    transfers: list[Transfer] = field(default_factory=list)

    def add(self, kind: str, nbytes: int) -> None:
        where = "?"
        for frame in reversed(traceback.extract_stack()[:-2]):
            if "/backends/" not in frame.filename.replace("\\", "/"):
                where = f"{frame.filename}:{frame.lineno}"
                break
        self.transfers.append(Transfer(kind, int(nbytes), where))

    def bulk(self, min_bytes: int = 1024) -> list[Transfer]:
        """Uploads and downloads of at least ``min_bytes`` (array data, not single values)."""
        return [t for t in self.transfers if t.kind != "scalar" and t.nbytes >= min_bytes]

    def clear(self) -> None:
        self.transfers.clear()


class DeviceNamespace:
    """The ``xp`` of the model: numpy's functions on :class:`DeviceArray` arguments, device results."""

    def __init__(self, log: TransferLog) -> None:
        self.log = log
        self.ndarray = DeviceArray

    def unwrap(self, x, where: str):
        if isinstance(x, DeviceArray):
            return x.host_view
        if isinstance(x, np.ndarray) and x.ndim > 0:
            raise TypeError(f"{where}: a host numpy array {x.shape} mixed with device arrays (CuPy refuses this; "
                            "move it with xp.asarray)")
        if isinstance(x, (list, tuple)):
            return type(x)(self.unwrap(v, where) for v in x)
        if isinstance(x, dict):
            return {k: self.unwrap(v, where) for k, v in x.items()}
        return x

    def wrap(self, r):
        if isinstance(r, np.ndarray):
            return DeviceArray(r, self)
        if isinstance(r, np.generic):  # CuPy's reductions give 0-d device arrays
            return DeviceArray(np.asarray(r), self)
        if isinstance(r, tuple):
            return tuple(self.wrap(v) for v in r)
        if isinstance(r, list):
            return [self.wrap(v) for v in r]
        return r

    def call(self, fn, args, kwargs, where: str):
        return self.wrap(fn(*self.unwrap(args, where), **self.unwrap(kwargs, where)))

    def upload(self, fn, a, *args, **kwargs):
        if isinstance(a, DeviceArray):
            return DeviceArray(fn(a.host_view, *args, **kwargs), self)
        if isinstance(a, (list, tuple)) and any(isinstance(v, DeviceArray) for v in a):
            raise TypeError("xp.asarray of a list holding device arrays: use xp.stack or xp.concatenate")
        host = fn(a, *args, **kwargs)
        self.log.add("upload", host.nbytes)
        return DeviceArray(np.array(host, copy=True), self)

    def argsort(self, a, axis=-1, kind=None):
        """Stable, as CuPy's argsort always is."""
        return self.call(np.argsort, (a,), {"axis": axis, "kind": "stable"}, "xp.argsort")

    def sort(self, a, axis=-1, kind=None):
        return self.call(np.sort, (a,), {"axis": axis, "kind": "stable"}, "xp.sort")

    def repeat(self, a, repeats, axis=None):
        if isinstance(repeats, DeviceArray):  # CuPy's repeat takes an int, list or tuple only
            raise TypeError("xp.repeat: repeats must be an int, list or tuple (CuPy), not a device array")
        return self.call(np.repeat, (a, repeats), {"axis": axis}, "xp.repeat")

    def __getattr__(self, name: str):
        attr = getattr(np, name)
        if name in _UPLOADERS:
            return lambda a, *args, **kwargs: self.upload(attr, a, *args, **kwargs)
        if name in _CREATORS:
            return lambda *args, **kwargs: DeviceArray(attr(*args, **kwargs), self)
        if callable(attr) and not isinstance(attr, type):
            return lambda *args, **kwargs: self.call(attr, args, kwargs, f"xp.{name}")
        return attr


class DeviceArray:
    """An array on the emulated device (see the module docstring)."""

    __array_priority__ = 1000

    @property
    def trackcore_namespace(self) -> DeviceNamespace:
        """Read by trackcore.backends.arrays.namespace_of."""
        return self.ns

    def __init__(self, a: np.ndarray, ns: DeviceNamespace) -> None:
        self.host_view = a  # the storage: kernels of the host emulation read and write it
        self.ns = ns

    # -- numpy protocols: results stay on the device, implicit conversion fails ---------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion of an (emulated) device array to a NumPy array is not allowed; "
                        "use .get() or the runtime's to_host")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        where = f"np.{ufunc.__name__}"
        out = kwargs.pop("out", None)
        args = self.ns.unwrap(inputs, where)
        kwargs = self.ns.unwrap(kwargs, where)
        if out is not None:
            kwargs["out"] = tuple(self.ns.unwrap(o, where) for o in out)
            getattr(ufunc, method)(*args, **kwargs)
            return out[0] if len(out) == 1 else out
        return self.ns.wrap(getattr(ufunc, method)(*args, **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        return self.ns.call(func, args, kwargs, f"np.{func.__name__}")

    # -- explicit transfers ----------------------------------------------------------------------------
    def get(self) -> np.ndarray:
        self.ns.log.add("download", self.host_view.nbytes)
        return self.host_view.copy()

    def tolist(self):
        self.ns.log.add("download", self.host_view.nbytes)
        return self.host_view.tolist()

    def tobytes(self) -> bytes:
        self.ns.log.add("download", self.host_view.nbytes)
        return self.host_view.tobytes()

    def item(self):
        self.ns.log.add("scalar", self.host_view.itemsize)
        return self.host_view.item()

    def __int__(self) -> int:
        return int(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __index__(self) -> int:
        return operator.index(self.item())

    # -- array behaviour --------------------------------------------------------------------------------
    shape = property(lambda self: self.host_view.shape)
    dtype = property(lambda self: self.host_view.dtype)
    ndim = property(lambda self: self.host_view.ndim)
    size = property(lambda self: self.host_view.size)
    nbytes = property(lambda self: self.host_view.nbytes)
    itemsize = property(lambda self: self.host_view.itemsize)
    T = property(lambda self: DeviceArray(self.host_view.T, self.ns))

    def __len__(self) -> int:
        return len(self.host_view)

    def argsort(self, axis=-1, kind=None):
        return self.ns.argsort(self, axis=axis)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"DeviceArray({self.host_view!r})"

    def __getitem__(self, index):
        return self.ns.wrap(self.host_view[self.ns.unwrap(index, "indexing")])

    def __setitem__(self, index, value) -> None:
        self.host_view[self.ns.unwrap(index, "indexing")] = self.ns.unwrap(value, "assignment")

    def __getattr__(self, name: str):
        if name.startswith("__"):  # no __array_interface__ etc.: numpy must not read the storage behind our back
            raise AttributeError(name)
        attr = getattr(self.host_view, name)
        if callable(attr):
            return lambda *args, **kwargs: self.ns.call(attr, args, kwargs, f".{name}()")
        return self.ns.wrap(attr)


def _binary(ufunc, reflected: bool = False):
    if reflected:
        return lambda self, other: ufunc(other, self)
    return lambda self, other: ufunc(self, other)


for _name, _ufunc in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                      ("floordiv", np.floor_divide), ("mod", np.remainder), ("pow", np.power), ("and", np.bitwise_and),
                      ("or", np.bitwise_or), ("xor", np.bitwise_xor), ("lshift", np.left_shift),
                      ("rshift", np.right_shift)):
    setattr(DeviceArray, f"__{_name}__", _binary(_ufunc))
    setattr(DeviceArray, f"__r{_name}__", _binary(_ufunc, True))
for _name, _ufunc in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                      ("eq", np.equal), ("ne", np.not_equal)):
    setattr(DeviceArray, f"__{_name}__", _binary(_ufunc))
DeviceArray.__neg__ = lambda self: np.negative(self)
DeviceArray.__pos__ = lambda self: np.positive(self)
DeviceArray.__abs__ = lambda self: np.absolute(self)
DeviceArray.__invert__ = lambda self: np.invert(self)
DeviceArray.__hash__ = None


class DeviceModelRuntime(HostRuntime):
    """The host emulation with :class:`DeviceArray` arrays and a :class:`TransferLog` (``log``)."""

    compiler = "g++ (host emulation, device array model)"

    def __init__(self, cache_dir=None) -> None:
        super().__init__(cache_dir)
        self.log = TransferLog()
        self.xp = DeviceNamespace(self.log)

    def launch(self, fn, n_threads: int, args: tuple) -> None:
        fn.run(n_threads, tuple(a.host_view if isinstance(a, DeviceArray) else a for a in args))

    def is_device(self, a) -> bool:
        return isinstance(a, DeviceArray)

    def to_host(self, a):
        return a.get() if isinstance(a, DeviceArray) else a
