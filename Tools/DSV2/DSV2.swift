// The umbrella library: `import DSV2` gives a library user everything needed to open and run a
// model (`Model.open`), tokenize and generate. The reference engine's types are exported for
// `EngineChoice.reference(form:storage:)`.
@_exported import DSV2Core
@_exported import DSV2Text
@_exported import DSV2Generation
@_exported import DSV2Formats
@_exported import DSV2Quantized
@_exported import DSV2Container
@_exported import DSV2Reference
