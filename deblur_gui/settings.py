"""What the app remembers between sessions (QSettings): recent files, folders, model, tile, device.

One small typed wrapper so every key is spelled once and every value comes back with the right
type whatever the platform's settings backend stored (INI files return strings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from core.defaults import DEFAULT_FEATHER, DEFAULT_OVERLAP, DEFAULT_TILE

__all__ = ["Settings", "MAX_RECENT"]

MAX_RECENT = 10


class Settings:
    """Typed access to the app's QSettings."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings("deblur", "deblur-gui")

    # ------------------------------------------------------------------ helpers
    def _get(self, key: str, default: Any, kind: type) -> Any:
        value = self.q.value(key, default)
        if value is None:
            return default
        try:
            if kind is bool:
                return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            return kind(value)
        except (TypeError, ValueError):
            return default

    def sync(self) -> None:
        self.q.sync()

    # ------------------------------------------------------------------ files
    def recent_files(self) -> list[str]:
        raw = self.q.value("files/recent", "[]")
        try:
            items = json.loads(raw) if isinstance(raw, str) else list(raw or [])
        except (TypeError, ValueError):
            items = []
        return [str(p) for p in items if isinstance(p, str)][:MAX_RECENT]

    def add_recent_file(self, path: str | Path) -> list[str]:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_files() if p != path]
        items.insert(0, path)
        items = items[:MAX_RECENT]
        self.q.setValue("files/recent", json.dumps(items))
        return items

    def remove_recent_file(self, path: str | Path) -> None:
        path = str(path)
        self.q.setValue("files/recent", json.dumps([p for p in self.recent_files() if p != path]))

    def clear_recent_files(self) -> None:
        self.q.setValue("files/recent", "[]")

    def last_folder(self) -> str:
        folder = self._get("files/last_folder", "", str)
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def set_last_folder(self, folder: str | Path) -> None:
        self.q.setValue("files/last_folder", str(folder))

    def last_save_folder(self) -> Path | None:
        """Where the user last saved a restored image (None: never, or it is gone)."""
        folder = self._get("files/last_save_folder", "", str)
        return Path(folder) if folder and Path(folder).is_dir() else None

    def set_last_save_folder(self, folder: str | Path) -> None:
        self.q.setValue("files/last_save_folder", str(folder))

    # ------------------------------------------------------------------ model and run
    def model(self) -> str:
        from core.models.registry import default_model_name

        return self._get("model/name", default_model_name(), str)

    def set_model(self, name: str) -> None:
        self.q.setValue("model/name", name)

    def model_params(self, name: str) -> dict[str, Any]:
        raw = self._get(f"model/params/{name}", "{}", str)
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def set_model_params(self, name: str, params: dict[str, Any]) -> None:
        self.q.setValue(f"model/params/{name}", json.dumps(params))

    def tile(self) -> int:
        return self._get("run/tile", DEFAULT_TILE, int)

    def set_tile(self, tile: int) -> None:
        self.q.setValue("run/tile", int(tile))

    def overlap(self) -> int:
        return self._get("run/overlap", DEFAULT_OVERLAP, int)

    def set_overlap(self, overlap: int) -> None:
        self.q.setValue("run/overlap", int(overlap))

    def device(self) -> str:
        return self._get("run/device", "auto", str)

    def set_device(self, device: str) -> None:
        self.q.setValue("run/device", device)

    def feather(self) -> float:
        return self._get("rois/feather", DEFAULT_FEATHER, float)

    def set_feather(self, feather: float) -> None:
        self.q.setValue("rois/feather", float(feather))

    def speed(self, model: str, device: str, params: dict[str, Any] | None = None) -> float | None:
        """Megapixels per second measured on this machine for a model on a device with these
        settings (None if never run so): 8 views or 50 diffusion steps take several times as long
        as the defaults, so each combination keeps its own figure."""
        value = self._get(_speed_key(model, device, params), 0.0, float)
        return value if value > 0 else None

    def set_speed(self, model: str, device: str, mpix_per_s: float,
                  params: dict[str, Any] | None = None) -> None:
        self.q.setValue(_speed_key(model, device, params), float(mpix_per_s))

    def load_seconds(self, model: str, device: str) -> float | None:
        """Seconds it took to load a model onto a device here (None if never measured)."""
        value = self._get(f"speed/{model}/{device}/load_s", -1.0, float)
        return value if value >= 0 else None

    def set_load_seconds(self, model: str, device: str, seconds: float) -> None:
        self.q.setValue(f"speed/{model}/{device}/load_s", float(seconds))

    # ------------------------------------------------------------------ view
    def colormap(self) -> str:
        return self._get("view/colormap", "Grey", str)

    def set_colormap(self, name: str) -> None:
        self.q.setValue("view/colormap", name)

    def geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self.q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def set_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)


def _speed_key(model: str, device: str, params: dict[str, Any] | None) -> str:
    shown = ",".join(f"{k}={params[k]}" for k in sorted(params or {}))
    return f"speed/{model}/{device}" + (f"/{shown}" if shown else "")
