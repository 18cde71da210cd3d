// Container format and converter.
