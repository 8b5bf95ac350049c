"""The JSON Schemas of the Foxglove message types the export writes (schema encoding
``jsonschema``): ``foxglove.Log``, ``foxglove.SceneUpdate`` and ``foxglove.FrameTransform``.

They follow the structure of Foxglove's published schemas (github.com/foxglove/schemas,
``schemas/jsonschema``): the same titles, properties, types and enumerations, so Foxglove
and Lichtblick recognise the channels by their schema name and draw them with their own
panels (Log, 3D). Built from small pieces here instead of pasted whole: the pieces repeat
(a pose, a colour) and each is written once.
"""

from __future__ import annotations

from typing import Any


def _number(description: str) -> dict[str, Any]:
    return {"type": "number", "description": description}


def time_schema(description: str) -> dict[str, Any]:
    """A ``time``: whole seconds since the epoch and nanoseconds."""
    return {"type": "object", "title": "time", "description": description,
            "properties": {"sec": {"type": "integer", "minimum": 0},
                           "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999}}}


def _duration(description: str) -> dict[str, Any]:
    return {"type": "object", "title": "duration", "description": description,
            "properties": {"sec": {"type": "integer"},
                           "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999}}}


def _vector3(description: str) -> dict[str, Any]:
    return {"title": "foxglove.Vector3", "description": description, "type": "object",
            "properties": {axis: _number(f"{axis} coordinate length") for axis in "xyz"}}


def _point3(description: str) -> dict[str, Any]:
    return {"title": "foxglove.Point3", "description": description, "type": "object",
            "properties": {axis: _number(f"{axis} coordinate position") for axis in "xyz"}}


def _quaternion(description: str) -> dict[str, Any]:
    return {"title": "foxglove.Quaternion", "description": description, "type": "object",
            "properties": {axis: _number(f"{axis} value") for axis in "xyzw"}}


def _pose(description: str) -> dict[str, Any]:
    return {"title": "foxglove.Pose", "description": description, "type": "object",
            "properties": {
                "position": _vector3("Point denoting position in 3D space"),
                "orientation": _quaternion("Quaternion denoting orientation in 3D space")}}


def _color(description: str) -> dict[str, Any]:
    return {"title": "foxglove.Color", "description": description, "type": "object",
            "properties": {channel: _number(f"{name} value between 0 and 1") for channel, name
                           in (("r", "Red"), ("g", "Green"), ("b", "Blue"), ("a", "Alpha"))}}


def _array(items: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "array", "items": items, "description": description}


def _primitive(title: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"title": title, "description": description, "type": "object",
            "properties": properties}


def _enum(title: str, description: str, values: list[tuple[str, int, str]]) -> dict[str, Any]:
    return {"title": title, "description": description,
            "oneOf": [{"title": name, "const": value, "description": text}
                      for name, value, text in values]}


_LINE_TYPES = [("LINE_STRIP", 0, "Connected line segments: 0-1, 1-2, ..., (n-1)-n"),
               ("LINE_LOOP", 1, "Closed polygon: 0-1, 1-2, ..., (n-1)-n, n-0"),
               ("LINE_LIST", 2, "Individual line segments: 0-1, 2-3, 4-5, ...")]


def _scene_entity() -> dict[str, Any]:
    pose = _pose
    return {
        "title": "foxglove.SceneEntity",
        "description": "A visual element in a 3D scene. An entity may be composed of multiple "
                       "primitives which all share the same frame of reference.",
        "type": "object",
        "properties": {
            "timestamp": time_schema("Timestamp of the entity"),
            "frame_id": {"type": "string", "description": "Frame of reference"},
            "id": {"type": "string", "description": "Identifier for the entity. A entity will "
                   "replace any prior entity on the same topic with the same `id`."},
            "lifetime": _duration("Length of time (relative to `timestamp`) after which the "
                                  "entity should be automatically removed. Zero value "
                                  "indicates the entity should remain visible until it is "
                                  "replaced or deleted."),
            "frame_locked": {"type": "boolean", "description": "Whether the entity should "
                             "keep its location in the fixed frame (false) or follow the "
                             "frame specified in `frame_id` as it moves relative to the fixed "
                             "frame (true)"},
            "metadata": _array(_primitive(
                "foxglove.KeyValuePair", "A key with its associated value",
                {"key": {"type": "string", "description": "Key"},
                 "value": {"type": "string", "description": "Value"}}),
                "Additional user-provided metadata associated with the entity. Keys must be "
                "unique."),
            "arrows": _array(_primitive("foxglove.ArrowPrimitive", "A primitive representing "
                                        "an arrow", {
                "pose": pose("Position of the arrow's tail and orientation of the arrow. "
                             "Identity orientation means the arrow points in the +x direction."),
                "shaft_length": _number("Length of the arrow shaft"),
                "shaft_diameter": _number("Diameter of the arrow shaft"),
                "head_length": _number("Length of the arrow head"),
                "head_diameter": _number("Diameter of the arrow head"),
                "color": _color("Color of the arrow")}), "Arrow primitives"),
            "cubes": _array(_primitive("foxglove.CubePrimitive", "A primitive representing a "
                                       "cube or rectangular prism", {
                "pose": pose("Position of the center of the cube and orientation of the cube"),
                "size": _vector3("Size of the cube along each axis"),
                "color": _color("Color of the cube")}), "Cube primitives"),
            "spheres": _array(_primitive("foxglove.SpherePrimitive", "A primitive representing "
                                         "a sphere or ellipsoid", {
                "pose": pose("Position of the center of the sphere and orientation of the "
                             "sphere"),
                "size": _vector3("Size (diameter) of the sphere along each axis"),
                "color": _color("Color of the sphere")}), "Sphere primitives"),
            "cylinders": _array(_primitive("foxglove.CylinderPrimitive", "A primitive "
                                           "representing a cylinder, elliptic cylinder, or "
                                           "truncated cone", {
                "pose": pose("Position of the center of the cylinder and orientation of the "
                             "cylinder. The flat face(s) are perpendicular to the z-axis."),
                "size": _vector3("Size of the cylinder's bounding box"),
                "bottom_scale": _number("0-1, ratio of the diameter of the cylinder's bottom "
                                        "face (min z) to the bottom of the bounding box"),
                "top_scale": _number("0-1, ratio of the diameter of the cylinder's top face "
                                     "(max z) to the top of the bounding box"),
                "color": _color("Color of the cylinder")}), "Cylinder primitives"),
            "lines": _array(_primitive("foxglove.LinePrimitive", "A primitive representing a "
                                       "series of points connected by lines", {
                "type": _enum("foxglove.LineType", "Drawing primitive to use for lines",
                              _LINE_TYPES),
                "pose": pose("Origin of lines relative to reference frame"),
                "thickness": _number("Line thickness"),
                "scale_invariant": {"type": "boolean", "description": "Indicates whether "
                                    "`thickness` is a fixed size in screen pixels (true), or "
                                    "specified in world coordinates and scales with distance "
                                    "from the camera (false)"},
                "points": _array(_point3("A point representing a position in 3D space"),
                                 "Points along the line"),
                "color": _color("Solid color to use for the whole line. One of `color` or "
                                "`colors` must be provided."),
                "colors": _array(_color("A color in RGBA format"), "Per-point colors (if "
                                 "specified, must have the same length as `points`). One of "
                                 "`color` or `colors` must be provided."),
                "indices": _array({"type": "integer", "minimum": 0}, "Indices into the "
                                  "`points` and `colors` attribute arrays, which can be used "
                                  "to avoid duplicating attribute data.")}), "Line primitives"),
            "triangles": _array(_primitive("foxglove.TriangleListPrimitive", "A primitive "
                                           "representing a set of triangles or a surface "
                                           "tiled by triangles", {
                "pose": pose("Origin of triangles relative to reference frame"),
                "points": _array(_point3("A point representing a position in 3D space"),
                                 "Vertices to use for triangles, interpreted as a list of "
                                 "triples (0-1-2, 3-4-5, ...)"),
                "color": _color("Solid color to use for the whole shape. One of `color` or "
                                "`colors` must be provided."),
                "colors": _array(_color("A color in RGBA format"), "Per-vertex colors (if "
                                 "specified, must have the same length as `points`). One of "
                                 "`color` or `colors` must be provided."),
                "indices": _array({"type": "integer", "minimum": 0}, "Indices into the "
                                  "`points` and `colors` attribute arrays, which can be used "
                                  "to avoid duplicating attribute data.")}),
                "Triangle list primitives"),
            "texts": _array(_primitive("foxglove.TextPrimitive", "A primitive representing a "
                                       "text label", {
                "pose": pose("Position of the center of the text box and orientation of the "
                             "text. Identity orientation means the text is oriented in the xy-"
                             "plane and flows from -x to +x."),
                "billboard": {"type": "boolean", "description": "Whether the text should "
                              "respect `pose.orientation` (false) or always face the camera "
                              "(true)"},
                "font_size": _number("Font size (height of one line of text)"),
                "scale_invariant": {"type": "boolean", "description": "Indicates whether "
                                    "`font_size` is a fixed size in screen pixels (true), or "
                                    "specified in world coordinates and scales with distance "
                                    "from the camera (false)"},
                "color": _color("Color of the text"),
                "text": {"type": "string", "description": "Text"}}), "Text primitives"),
            "models": _array(_primitive("foxglove.ModelPrimitive", "A primitive representing "
                                        "a 3D model file loaded from an external URL or "
                                        "embedded data", {
                "pose": pose("Origin of model relative to reference frame"),
                "scale": _vector3("Scale factor to apply to the model along each axis"),
                "color": _color("Solid color to use for the whole model if "
                                "`override_color` is true."),
                "override_color": {"type": "boolean", "description": "Whether to use the "
                                   "color specified in `color` instead of any materials "
                                   "embedded in the original model."},
                "url": {"type": "string", "description": "URL pointing to model file. One of "
                        "`url` or `data` should be provided."},
                "media_type": {"type": "string", "description": "[Media type](https://"
                               "developer.mozilla.org/en-US/docs/Web/HTTP/Basics_of_HTTP/"
                               "MIME_types) of embedded model (e.g. `model/gltf-binary`). "
                               "Required if `data` is provided instead of `url`. Overrides "
                               "the inferred media type if `url` is provided."},
                "data": {"type": "string", "contentEncoding": "base64", "description":
                         "Embedded model. One of `url` or `data` should be provided. If "
                         "`data` is provided, `media_type` must be set to indicate the type "
                         "of the data."}}), "Model primitives"),
        },
    }


SCENE_UPDATE: dict[str, Any] = {
    "title": "foxglove.SceneUpdate",
    "description": "An update to the entities displayed in a 3D scene",
    "type": "object",
    "properties": {
        "deletions": _array(_primitive(
            "foxglove.SceneEntityDeletion", "Command to remove previously published entities", {
                "timestamp": time_schema("Timestamp of the deletion. Only matching entities "
                                         "earlier than this timestamp will be deleted."),
                "type": _enum("foxglove.SceneEntityDeletionType", "Type of deletion action to "
                              "perform", [
                                  ("MATCHING_ID", 0, "Delete the existing entity on the same "
                                   "topic that has the provided `id`"),
                                  ("ALL", 1, "Delete all existing entities on the same "
                                   "topic")]),
                "id": {"type": "string", "description": "Identifier which must match if "
                       "`type` is `MATCHING_ID`."}}), "Scene entities to delete"),
        "entities": _array(_scene_entity(), "Scene entities to add or replace"),
    },
}
"""``foxglove.SceneUpdate``."""

LOG: dict[str, Any] = {
    "title": "foxglove.Log",
    "description": "A log message",
    "type": "object",
    "properties": {
        "timestamp": time_schema("Timestamp of log message"),
        "level": _enum("foxglove.LogLevel", "Log level", [
            ("UNKNOWN", 0, "Unknown log level"), ("DEBUG", 1, "Debug log level"),
            ("INFO", 2, "Info log level"), ("WARNING", 3, "Warning log level"),
            ("ERROR", 4, "Error log level"), ("FATAL", 5, "Fatal log level")]),
        "message": {"type": "string", "description": "Log message"},
        "name": {"type": "string", "description": "Process or node name"},
        "file": {"type": "string", "description": "Filename"},
        "line": {"type": "integer", "minimum": 0, "description": "Line number in the file"},
    },
}
"""``foxglove.Log``."""

FRAME_TRANSFORM: dict[str, Any] = {
    "title": "foxglove.FrameTransform",
    "description": "A transform between two reference frames in 3D space",
    "type": "object",
    "properties": {
        "timestamp": time_schema("Timestamp of transform"),
        "parent_frame_id": {"type": "string", "description": "Name of the parent frame"},
        "child_frame_id": {"type": "string", "description": "Name of the child frame"},
        "translation": _vector3("Translation component of the transform"),
        "rotation": _quaternion("Rotation component of the transform"),
    },
}
"""``foxglove.FrameTransform``."""

ALARM_TABLE: dict[str, Any] = {
    "title": "odc.AlarmTable",
    "description": "The twin's alarm table when it changed (docs/protocol.md, \"alarms\")",
    "type": "object",
    "properties": {
        "timestamp": time_schema("Simulation time of the table"),
        "n_active": {"type": "integer", "minimum": 0, "description": "Alarms active"},
        "n_unacknowledged": {"type": "integer", "minimum": 0,
                             "description": "Alarms not acknowledged"},
        "n_shelved": {"type": "integer", "minimum": 0, "description": "Alarms shelved"},
        "alarms": _array({
            "type": "object",
            "properties": {
                "id": {"type": "integer", "description": "The twin's number for it"},
                "kind": {"type": "string", "description": "The event kind that raised it"},
                "node": {"type": "string", "description": "The node's name ('' the twin)"},
                "parameter": {"type": "string", "description": "Field, model or testbed"},
                "severity": {"type": "string", "enum": ["warning", "alarm"]},
                "state": {"type": "string", "description": "active_unack, active_ack, "
                          "rtn_unack or shelved"},
                "active": {"type": "boolean", "description": "The condition holds now"},
                "message": {"type": "string", "description": "The last event's text"},
                "count": {"type": "integer", "minimum": 0, "description": "Violations"},
            }}, "Highest severity first, newest first"),
    },
}
"""The alarm table as ``odc export foxglove`` writes it (``/alarms``; a Raw Messages panel
shows it, a plot takes ``/alarms.n_active``)."""
