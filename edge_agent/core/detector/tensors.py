"""What a backend says about its model's inputs and outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Dim = int | str | None
"""A static size, or a name / None for a dynamic one."""

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: type

    @classmethod
    def from_ort(cls, arg) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) and d >= 0 else (d or None) for d in arg.shape)
        return cls(arg.name, shape, _ORT_TYPES.get(arg.type, np.float32))

    @property
    def key(self) -> str:
        """The name without a TensorFlow `:0` suffix, lower-cased."""
        return self.name.split(":")[0].lower()

    def dim(self, i: int) -> int | None:
        d = self.shape[i] if -len(self.shape) <= i < len(self.shape) else None
        return d if isinstance(d, int) else None

    def __str__(self) -> str:
        dims = ",".join(str(d) if d is not None else "?" for d in self.shape)
        return f"{self.name} {np.dtype(self.dtype).name}[{dims}]"
