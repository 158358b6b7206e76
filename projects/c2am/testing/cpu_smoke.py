"""Shrink a real LVIS config so that it trains and evaluates in seconds on a CPU.

The overrides keep everything that matters for integration (the heads, their losses, 1203 /
1230 classes, LVISV1Dataset, LVISMetric, the Runner) and shrink only widths, depths, proposal
counts, image size and the schedule. Used by ``tools/smoke_train.py`` and the tests.
"""
from __future__ import annotations

import os

from mmengine.config import Config

WIDTH = 32  # FPN / RoI feature width


def _shrink_bbox_head(head: dict) -> None:
    head.update(in_channels=WIDTH, fc_out_channels=64)


def cpu_smoke_config(cfg: Config, data_root: str, work_dir: str, max_iters: int = 2,
                     val_interval: int | None = None) -> Config:
    """Return a copy of ``cfg`` sized for a CPU smoke run on generated LVIS-format data.

    Args:
        cfg (Config): a full LVIS config (e.g. from ``configs/``).
        data_root (str): root written by :func:`projects.c2am.data.make_synthetic_lvis`.
        work_dir (str): where the Runner writes logs and checkpoints.
        max_iters (int): training iterations.
        val_interval (int, optional): validate every this many iterations (default: at end).

    Returns:
        Config: the modified copy.
    """
    cfg = Config(cfg.to_dict()) if not isinstance(cfg, Config) else cfg.copy()
    data_root = os.path.join(data_root, '')
    model = cfg.model
    model.backbone.update(depth=18, base_channels=16, stem_channels=16, frozen_stages=-1,
                          norm_eval=False, init_cfg=None)
    model.neck.update(in_channels=[16, 32, 64, 128], out_channels=WIDTH)
    model.rpn_head.update(in_channels=WIDTH, feat_channels=WIDTH)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = WIDTH
    heads = roi.bbox_head if isinstance(roi.bbox_head, list) else [roi.bbox_head]
    for head in heads:
        _shrink_bbox_head(head)
    roi.mask_roi_extractor.out_channels = WIDTH
    roi.mask_head.update(in_channels=WIDTH, conv_out_channels=WIDTH)
    train_rpn = model.train_cfg.rpn_proposal
    train_rpn.update(nms_pre=200, max_per_img=64)
    rcnn_train = model.train_cfg.rcnn
    for stage in (rcnn_train if isinstance(rcnn_train, list) else [rcnn_train]):
        stage.sampler.num = 32
    model.test_cfg.rpn.update(nms_pre=100, max_per_img=32)
    # score_thr 0: an untrained model still returns its top-20 boxes, so LVISMetric always has
    # results to evaluate (it returns no metrics at all for an empty result set)
    model.test_cfg.rcnn.update(score_thr=0.0, max_per_img=20)

    pipe_train = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(128, 128), keep_ratio=True),
        dict(type='PackDetInputs'),
    ]
    pipe_test = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(128, 128), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
    ]
    dataset_type = 'LVISV1Dataset'
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=dict(type=dataset_type, data_root=data_root,
                     ann_file='annotations/lvis_v1_train.json', data_prefix=dict(img=''),
                     filter_cfg=dict(filter_empty_gt=True, min_size=0), pipeline=pipe_train))
    cfg.val_dataloader = dict(
        batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type=dataset_type, data_root=data_root,
                     ann_file='annotations/lvis_v1_val.json', data_prefix=dict(img=''),
                     test_mode=True, pipeline=pipe_test))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = dict(type='LVISMetric', ann_file=data_root +
                             'annotations/lvis_v1_val.json', metric=['bbox', 'segm'])
    cfg.test_evaluator = cfg.val_evaluator

    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=val_interval or max_iters)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0,
                                end=max_iters)]
    cfg.optim_wrapper = dict(type='OptimWrapper',
                             optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                                            weight_decay=0.0001),
                             clip_grad=dict(max_norm=35, norm_type=2))
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=max_iters,
                                        by_epoch=False)
    cfg.log_processor = dict(type='LogProcessor', window_size=1, by_epoch=False)
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'),
                       mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
    cfg.visualizer = dict(type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                          name='visualizer')
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=16)
    cfg.launcher = 'none'
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    return cfg
