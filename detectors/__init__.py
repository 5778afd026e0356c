"""Numerical anomaly detectors behind one contract (fit / score / threshold_ / predict). No I/O, no LLM."""
