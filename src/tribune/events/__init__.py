"""Room events to hosts and speakers: publish once, deliver to every subscriber."""
