"""The YouTube-VIS format (annotations, results, RLE masks) and metric (AP/AR, tracking figures) that training,
evaluation and replay share; the network never imports it."""
