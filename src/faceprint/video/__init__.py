"""Video: face tracking, shot cuts, per-track quality, identity voting and liveness on frame streams.

Heavy dependencies (OpenCV, dlib, ONNX Runtime) load on first use, not on import.
"""

from .liveness import LIVE, PENDING, SPOOF, UNAVAILABLE, AllOf, LivenessStatus, NoLiveness
from .quality import FaceQuality, QualityScores, pose_from_landmarks
from .recognizer import FrameResult, TrackView, VideoRecognizer
from .shots import ShotCutDetector
from .tracker import FaceTracker, Track
from .voting import Decision, IdentityVote

__all__ = [
    "LIVE", "PENDING", "SPOOF", "UNAVAILABLE", "AllOf", "Decision", "FaceQuality", "FaceTracker", "FrameResult",
    "IdentityVote", "LivenessStatus", "NoLiveness", "QualityScores", "ShotCutDetector", "Track", "TrackView",
    "VideoRecognizer",
    "pose_from_landmarks",
]
