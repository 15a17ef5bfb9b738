"""The marker pictures of docs/ros.md (sgnet_ros/tools/marker_view.py): projections checked against hand-worked pixels."""
import math
from pathlib import Path

import numpy as np
import yaml
from geometry_msgs.msg import Point
from visualization_msgs.msg import Marker, MarkerArray

from sgnet_ros.tools.marker_view import BACKGROUND, MarkerScene, camera_view, orbit_view

K = [200.0, 0.0, 160.0, 0.0, 200.0, 96.0, 0.0, 0.0, 1.0]  # a 320 x 192 camera
RVIZ_CONFIG = yaml.safe_load((Path(__file__).resolve().parents[3] / "config" / "sgnet.rviz").read_text())


def marker(marker_type, x, y, z, ns="centroid", identity=1, rgb=(1.0, 0.0, 0.0), scale=0.05):
    message = Marker(ns=ns, id=identity, type=marker_type, action=Marker.ADD)
    message.pose.position.x, message.pose.position.y, message.pose.position.z = x, y, z
    message.scale.x = message.scale.y = message.scale.z = scale
    message.color.r, message.color.g, message.color.b, message.color.a = (*rgb, 1.0)
    return message


def scene_of(*markers):
    scene = MarkerScene()
    scene.apply(MarkerArray(markers=list(markers)))
    return scene


def test_a_sphere_lands_on_its_pixel_through_k():
    # (0.5, -0.25, 2.0): u = 200 x 0.5 / 2 + 160 = 210, v = 200 x -0.25 / 2 + 96 = 71; radius 200 x 0.025 / 2 = 2.5 px
    image = np.zeros((192, 320, 3), np.uint8)
    drawn = camera_view(image, K, scene_of(marker(Marker.SPHERE, 0.5, -0.25, 2.0)))
    assert tuple(drawn[71, 210]) == (0, 0, 255)  # BGR red
    assert not drawn[71, 216].any() and not drawn[77, 210].any()
    assert not image.any()  # the input is left as it was


def test_a_box_edge_and_a_rotated_pose_project_where_worked_out():
    # An edge from (-0.2, -0.1, 0) to (0.2, -0.1, 0), turned 90 degrees about z (x -> y, y -> -x): from (0.1, -0.2, 0)
    # to (0.1, 0.2, 0); posed at (0, 0, 2): a vertical line at u = 200 x 0.1 / 2 + 160 = 170, v from 76 to 116.
    edge = marker(Marker.LINE_LIST, 0.0, 0.0, 2.0, ns="box", rgb=(0.0, 1.0, 0.0), scale=0.01)
    edge.points = [Point(x=-0.2, y=-0.1), Point(x=0.2, y=-0.1)]
    edge.pose.orientation.z, edge.pose.orientation.w = math.sin(math.pi / 4), math.cos(math.pi / 4)
    drawn = camera_view(np.zeros((192, 320, 3), np.uint8), K, scene_of(edge))
    column = np.flatnonzero(drawn[:, 170, 1] > 200)
    assert abs(column.min() - 76) <= 1 and abs(column.max() - 116) <= 1  # a 2 px anti-aliased line
    assert not drawn[96, 150].any() and not drawn[60, 170].any()


def test_the_orbit_view_looks_along_the_optical_axis_with_up_on_screen_up():
    view = RVIZ_CONFIG["Visualization Manager"]["Views"]["Current"]
    x, y, z = (view["Focal Point"][axis] for axis in "XYZ")
    magenta = (1.0, 0.0, 1.0)  # a colour neither the grid nor the axes have
    sphere = lambda x, y, z: scene_of(marker(Marker.SPHERE, x, y, z, rgb=magenta, scale=0.2))
    where = lambda picture: np.argwhere((picture == (255, 0, 255)).all(axis=2)).mean(axis=0)  # (row, column)
    assert np.abs(where(orbit_view(sphere(x, y, z), RVIZ_CONFIG, 400, 300)) - (149.5, 199.5)).max() < 1
    # half a metre up (y is down in the optical frame) of the focal point is above the centre, half a metre right
    # (+x) right of it
    up, right = where(orbit_view(sphere(x, y - 0.5, z), RVIZ_CONFIG, 400, 300)), \
        where(orbit_view(sphere(x + 0.5, y, z), RVIZ_CONFIG, 400, 300))
    assert up[0] < 150 - 20 and abs(up[1] - 199.5) < 1
    assert right[1] > 200 + 20 and abs(right[0] - 149.5) < 1
    assert tuple(orbit_view(MarkerScene(), RVIZ_CONFIG, 400, 300)[5, 5]) == BACKGROUND


def test_the_scene_applies_adds_deletes_and_deleteall_in_order():
    scene = scene_of(marker(Marker.SPHERE, 0, 0, 1, identity=1), marker(Marker.SPHERE, 0, 0, 1, identity=2))
    replaced = marker(Marker.SPHERE, 1, 0, 1, identity=2)
    deleted = marker(Marker.SPHERE, 0, 0, 1, identity=1)
    deleted.action = Marker.DELETE
    scene.apply(MarkerArray(markers=[replaced, deleted]))
    assert list(scene.shown) == [("centroid", 2)] and scene.shown["centroid", 2].pose.position.x == 1
    clear = Marker(action=Marker.DELETEALL)
    scene.apply(MarkerArray(markers=[clear, marker(Marker.SPHERE, 0, 0, 1, identity=5)]))
    assert list(scene.shown) == [("centroid", 5)]
