"""Live state estimation, parameter tracking and fault diagnosis of mirrored nodes.

``filter`` (the extended Kalman filter on the compute-radiator network, batched over
nodes), ``detectors`` (CUSUM, the heat test, stuck and jump checks), ``signatures`` (the
fault-signature table), ``tracking`` (drift alarms), ``estimator`` (all of them for N
nodes, pure numpy), ``params`` (the ``[estimation]`` table) and ``model`` (the twin's
``Estimation`` model, fed by the mirror). docs/models.md, "State estimation and diagnosis".
"""
