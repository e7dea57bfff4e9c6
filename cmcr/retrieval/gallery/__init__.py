"""A gallery: items of any modality embedded into one space, searchable by inner product.

One job per module, each importing only those above it in this list:

    items      the records: GalleryItem, NewItem, SourceFile, Hit
    identity   content hashes and the identity of the space a gallery was embedded with
    index      IndexSettings and the searchers (exact/approximate FAISS, torch on a GPU)
    previews   thumbnails, audio excerpts and light 3D models of items
    versions   the folder on disk: version folders, the CURRENT pointer, their reading and writing
    store      `Gallery`: add, remove, save, copy and search
    ingest     files into a gallery on decoding threads (ItemEmbedder, IngestReport)
    scan       which files a gallery takes, and their captions
    hub        push_gallery / pull_gallery through Hub dataset repos

Everything public is importable from here, so callers need not know the cut.
"""

from cmcr.retrieval.gallery.hub import pull_gallery, push_gallery
from cmcr.retrieval.gallery.identity import sha256_bytes, sha256_file, space_identity
from cmcr.retrieval.gallery.index import (IndexSettings, build_faiss_index, build_searcher, index_recall,
                                          load_or_build_index)
from cmcr.retrieval.gallery.ingest import IngestReport, ItemEmbedder, ingest
from cmcr.retrieval.gallery.items import GalleryItem, Hit, NewItem, SourceFile
from cmcr.data.media.kinds import EXTENSIONS, modality_of
from cmcr.retrieval.gallery.scan import caption_from_name, scan_folder
from cmcr.retrieval.gallery.writer import gallery_writer
from cmcr.retrieval.gallery.store import Gallery

__all__ = [
    "EXTENSIONS", "Gallery", "GalleryItem", "Hit", "IndexSettings", "IngestReport", "ItemEmbedder", "NewItem",
    "SourceFile", "build_faiss_index", "build_searcher", "caption_from_name", "index_recall", "ingest",
    "load_or_build_index", "modality_of", "pull_gallery", "push_gallery", "scan_folder", "sha256_bytes",
    "gallery_writer", "sha256_file", "space_identity",
]
