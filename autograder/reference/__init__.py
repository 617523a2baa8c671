"""Reference implementations in float64: the answers the grader compares against."""
