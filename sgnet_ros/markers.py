"""rviz markers of the instances located in 3D (visualization_msgs/MarkerArray on ``markers``).

Per located instance, three markers with the instance's track id as marker id, in the colour of its track (the
debug overlay's, sgnet_ros/overlay.py):

- namespace ``box``: a LINE_LIST wireframe of its axis-aligned box, posed at ``box_centre``, of ``size``
  (docs/depth.md),
- namespace ``centroid``: a SPHERE at its ``position`` (the centroid of the visible surface),
- namespace ``label``: a TEXT_VIEW_FACING "id class score" just above the box.

All in the colour image's optical frame with its header. A track that has markers and is not located in the next
frame published (it ended, left the view, or lost its depth) gets a DELETE for each of its markers in that
frame's array; every marker also has a ``LIFETIME_S`` lifetime, so nothing is left behind when the node stops
publishing (deactivated, stopped, or the subscriber came back after a pause).
"""
from __future__ import annotations

import copy
from typing import Mapping

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from sgnet_model.instances import FrameResult
from sgnet_ros.depth import Instance3D
from sgnet_ros.overlay import label_text, track_colour

TOPIC = "markers"
BOX_NAMESPACE, CENTROID_NAMESPACE, LABEL_NAMESPACE = "box", "centroid", "label"
NAMESPACES = (BOX_NAMESPACE, CENTROID_NAMESPACE, LABEL_NAMESPACE)
LIFETIME_S = 2  # a marker not refreshed for this long disappears (the node stopped publishing)
LINE_WIDTH_M = 0.01
CENTROID_DIAMETER_M = 0.05
TEXT_HEIGHT_M = 0.08  # height of an upper-case letter
MARKER_ID_MASK = 0x7FFFFFFF  # Marker.id is int32; track ids are uint32 and start at 1

# The 12 edges of a box as pairs of corners; corner c is at (sx, sy, sz) * size / 2 from the box's centre, where s
# is -1 or +1 by bits 0, 1, 2 of c. An edge joins two corners that differ in one bit.
BOX_EDGES = tuple((a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1)
CORNER_SIGNS = tuple(tuple(1 if corner >> axis & 1 else -1 for axis in range(3)) for corner in range(8))


def _template(namespace: str, marker_type: int, scale: float) -> Marker:
    """A marker of one namespace, copied for each instance (a new rosidl Marker costs tens of microseconds, a
    shallow copy a few): every field an instance changes is replaced in the copy, never modified in place."""
    marker = Marker(ns=namespace, type=marker_type, action=Marker.ADD, lifetime=Duration(sec=LIFETIME_S))
    marker.scale.x = marker.scale.y = marker.scale.z = scale  # LINE_LIST: line width; SPHERE: diameter; TEXT: height
    return marker


TEMPLATES = {BOX_NAMESPACE: _template(BOX_NAMESPACE, Marker.LINE_LIST, LINE_WIDTH_M),
             CENTROID_NAMESPACE: _template(CENTROID_NAMESPACE, Marker.SPHERE, CENTROID_DIAMETER_M),
             LABEL_NAMESPACE: _template(LABEL_NAMESPACE, Marker.TEXT_VIEW_FACING, TEXT_HEIGHT_M)}
IDENTITY_POSE = Pose()  # orientation w = 1 (geometry_msgs/Quaternion's default)


def _marker(namespace: str, header: Header, identity: int, colour: ColorRGBA, x: float, y: float,
            z: float) -> Marker:
    """A copy of the namespace's template for one track, posed at (x, y, z) with identity orientation."""
    marker = copy.copy(TEMPLATES[namespace])
    marker.header, marker.id, marker.color = header, identity, colour
    marker.pose = copy.copy(IDENTITY_POSE)
    marker.pose.position = Point(x=x, y=y, z=z)
    return marker


def box_corners(size: tuple[float, float, float]) -> list[Point]:
    """The LINE_LIST points of a box of ``size`` around the origin: the two ends of each of its 12 edges."""
    half_x, half_y, half_z = (extent / 2 for extent in size)
    corners = [Point(x=sx * half_x, y=sy * half_y, z=sz * half_z) for sx, sy, sz in CORNER_SIGNS]
    return [corners[corner] for edge in BOX_EDGES for corner in edge]


def marker_id(track_id: int) -> int:
    """The markers' id of a track: the track id (ids beyond int32, after billions of tracks, wrap)."""
    return track_id & MARKER_ID_MASK


class InstanceMarkers:
    """Builds each frame's MarkerArray; remembers which tracks have markers, to delete them when they end."""

    def __init__(self) -> None:
        self._shown: set[int] = set()  # marker ids with markers from the last array built

    def build(self, result: FrameResult, header: Header, spatial: Mapping[int, Instance3D]) -> MarkerArray:
        """The markers of every instance in ``spatial`` (track id -> 3D), and DELETEs for the tracks shown in the
        last array built that are not in this one."""
        markers = []
        shown = set()
        for instance in result.instances:
            located = spatial.get(instance.track_id)
            if located is None:
                continue
            identity = marker_id(instance.track_id)
            shown.add(identity)
            red, green, blue = (channel / 255 for channel in track_colour(instance.track_id))
            colour = ColorRGBA(r=red, g=green, b=blue, a=1.0)
            box = _marker(BOX_NAMESPACE, header, identity, colour, *located.box_centre)
            box.points = box_corners(located.size)
            centroid = _marker(CENTROID_NAMESPACE, header, identity, colour, *located.position)
            x, y, z = located.box_centre
            # above the box's top face (y points down in the optical frame), at its front
            label = _marker(LABEL_NAMESPACE, header, identity, colour, x, y - located.size[1] / 2 - TEXT_HEIGHT_M,
                            z - located.size[2] / 2)
            label.text = label_text(instance.track_id, instance.class_name, instance.score)
            markers += (box, centroid, label)
        for identity in sorted(self._shown - shown):
            for namespace in NAMESPACES:
                delete = copy.copy(TEMPLATES[namespace])
                delete.header, delete.id, delete.action = header, identity, Marker.DELETE
                markers.append(delete)
        self._shown = shown
        return MarkerArray(markers=markers)
