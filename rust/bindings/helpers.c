// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for dm-thin-rs: what Rust cannot call or declare directly.
 *
 * - String module parameters (Rust module parameters are integers and bool
 *   only): the names the two targets register under, so the module can be
 *   loaded beside the C dm-thin-pool (pool_target=rthin-pool thin_target=rthin).
 * - Static inline functions and function-like macros of the block layer.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/kdev_t.h>
#include <linux/workqueue.h>

static char pool_target[32] = "thin-pool";
module_param_string(pool_target, pool_target, sizeof(pool_target), 0444);
MODULE_PARM_DESC(pool_target, "Target name of the pool target (default thin-pool)");

static char thin_target[32] = "thin";
module_param_string(thin_target, thin_target, sizeof(thin_target), 0444);
MODULE_PARM_DESC(thin_target, "Target name of the thin target (default thin)");

const char *dmrs_pool_target_name(void)
{
	return pool_target;
}

const char *dmrs_thin_target_name(void)
{
	return thin_target;
}

void dmrs_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

struct workqueue_struct *dmrs_alloc_ordered_workqueue(const char *name)
{
	return alloc_ordered_workqueue("%s", WQ_MEM_RECLAIM, name);
}

unsigned int dmrs_major(dev_t dev)
{
	return MAJOR(dev);
}

unsigned int dmrs_minor(dev_t dev)
{
	return MINOR(dev);
}

sector_t dmrs_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}
