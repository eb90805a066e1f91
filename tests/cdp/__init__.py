"""Tests of the trio-native CDP client against a real Chromium."""
