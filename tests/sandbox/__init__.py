"""Tests of the provider emulators, driven through the official SDKs."""
