/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input to bindgen for dm-thin-rs: the device-mapper, bio and checksum APIs
 * the module calls, plus the C helpers in helpers.c (for static inlines,
 * macros and string module parameters Rust cannot express).
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/device-mapper.h>
#include <linux/kdev_t.h>
#include <linux/workqueue.h>

/* Constants defined through casts, which bindgen cannot read as macros. */
const blk_mode_t DMRS_CONST_BLK_OPEN_READ = BLK_OPEN_READ;
const blk_mode_t DMRS_CONST_BLK_OPEN_WRITE = BLK_OPEN_WRITE;
const blk_opf_t DMRS_CONST_REQ_OP_MASK = REQ_OP_MASK;
const blk_opf_t DMRS_CONST_REQ_FUA = REQ_FUA;
const blk_opf_t DMRS_CONST_REQ_PREFLUSH = REQ_PREFLUSH;
const blk_status_t DMRS_CONST_BLK_STS_OK = BLK_STS_OK;
const blk_status_t DMRS_CONST_BLK_STS_IOERR = BLK_STS_IOERR;
const blk_status_t DMRS_CONST_BLK_STS_NOSPC = BLK_STS_NOSPC;
const blk_status_t DMRS_CONST_BLK_STS_NOTSUPP = BLK_STS_NOTSUPP;
const blk_status_t DMRS_CONST_BLK_STS_DM_REQUEUE = BLK_STS_DM_REQUEUE;

/* helpers.c */
const char *dmrs_pool_target_name(void);
const char *dmrs_thin_target_name(void);
void dmrs_bio_set_dev(struct bio *bio, struct block_device *bdev);
struct workqueue_struct *dmrs_alloc_ordered_workqueue(const char *name);
unsigned int dmrs_major(dev_t dev);
unsigned int dmrs_minor(dev_t dev);
sector_t dmrs_bdev_nr_sectors(struct block_device *bdev);
