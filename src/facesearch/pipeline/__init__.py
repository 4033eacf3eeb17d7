"""The stages every image goes through: sources → decode → detect → align → embed."""
