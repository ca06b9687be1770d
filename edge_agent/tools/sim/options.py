"""Knobs of the synthetic world and the difficulty presets built from them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Preset = Literal["easy", "normal", "hard"]

# Each preset moves every knob in the direction its name says: smaller objects (zoom), more
# traffic and occluders, weaker contrast, darker and faster-drifting light, more noise and blur.
PRESETS: dict[str, dict[str, object]] = {
    "easy": dict(
        zoom=1.15, movers_per_minute=14, static_objects=(1, 3), occluders=1, contrast_loss=0.0,
        light_min=0.95, light_max=1.05, light_period_s=90.0, noise_sigma=2.0, blur_sigma=0.0,
    ),
    "normal": dict(
        zoom=1.0, movers_per_minute=26, static_objects=(2, 5), occluders=3, contrast_loss=0.2,
        light_min=0.72, light_max=1.08, light_period_s=60.0, noise_sigma=6.0, blur_sigma=0.6,
    ),
    "hard": dict(
        zoom=0.72, movers_per_minute=40, static_objects=(3, 7), occluders=6, contrast_loss=0.45,
        light_min=0.42, light_max=1.05, light_period_s=40.0, noise_sigma=18.0, blur_sigma=1.2,
    ),
}


class WorldOptions(BaseModel):
    """Everything that decides the pixels: the same options give byte-identical frames."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="Seed of the world (background, traffic, noise).")
    preset: Preset = Field("normal", description="Difficulty preset the knobs came from.")
    width: int = Field(640, ge=64, le=3840, description="Frame width in pixels.")
    height: int = Field(360, ge=64, le=2160, description="Frame height in pixels.")
    fps: float = Field(30.0, gt=0, le=240, description="Frames per second of world time.")
    zoom: float = Field(1.0, gt=0.2, le=3.0, description="Scale of objects on screen.")
    movers_per_minute: float = Field(26, ge=0, description="Arrival rate of moving objects.")
    static_objects: tuple[int, int] = Field((2, 5), description="Parked objects per scene.")
    occluders: int = Field(3, ge=0, le=12, description="Trees, poles and bushes in the view.")
    contrast_loss: float = Field(0.2, ge=0, lt=1, description="Object colours fade to grey.")
    light_min: float = Field(0.72, gt=0, description="Darkest global light gain.")
    light_max: float = Field(1.08, gt=0, description="Brightest global light gain.")
    light_period_s: float = Field(60.0, gt=0, description="Period of the lighting drift.")
    noise_sigma: float = Field(6.0, ge=0, le=64, description="Sensor noise std (grey levels).")
    blur_sigma: float = Field(0.6, ge=0, le=8, description="Defocus blur sigma in pixels.")
    segment_seconds: float = Field(20.0, gt=1, description="Length of one scene segment.")
    recurring_fraction: float = Field(0.25, ge=0, le=1, description="Segments replaying a scene.")
    near_duplicate_fraction: float = Field(
        0.15, ge=0, le=1, description="Segments replaying a scene plus one small new object."
    )

    @model_validator(mode="after")
    def _check(self) -> WorldOptions:
        if self.light_min > self.light_max:
            raise ValueError(f"light_min {self.light_min} is above light_max {self.light_max}")
        if self.static_objects[0] > self.static_objects[1] or self.static_objects[0] < 0:
            raise ValueError(f"static_objects must be (min, max), got {self.static_objects}")
        if self.recurring_fraction + self.near_duplicate_fraction > 1:
            raise ValueError("recurring_fraction + near_duplicate_fraction must be at most 1")
        return self

    @classmethod
    def from_preset(cls, preset: str = "normal", **overrides: object) -> WorldOptions:
        """Options of a preset, with any knob overridden by keyword."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[preset], "preset": preset, **overrides})

    def clean(self) -> WorldOptions:
        """The same world with no noise, blur or lighting drift (exact pixels, for checks)."""
        return self.model_copy(
            update=dict(noise_sigma=0.0, blur_sigma=0.0, light_min=1.0, light_max=1.0)
        )
