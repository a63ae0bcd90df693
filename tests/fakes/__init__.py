"""Stand-ins the tests (and the benches that rehearse journeys) use in place of what this workplace cannot reach:
a local Hub server, NVIDIA's and TensorFlow's pickled modules, rosinality's reference generator, a random SegFormer
and random full-size models."""
