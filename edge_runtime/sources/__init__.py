"""Where frames come from: the Pi camera, webcams, streams, video files, images and folders, behind one
:class:`FrameSource` interface, and the background reader that opens, reads and reconnects them."""
