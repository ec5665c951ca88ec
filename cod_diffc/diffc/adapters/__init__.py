"""The project's [`~diffc.adapter.BackboneAdapter`] implementations, one module per backbone.

Each module is imported only when its backbone is loaded (see [`~diffc.registry.BUILTIN_BACKBONES`]), so that this
package stays free of heavy imports (transformers, model files).
"""
