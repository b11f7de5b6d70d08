"""Tests for the app."""
