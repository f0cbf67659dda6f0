package crypt

import (
	"context"

	"sluice/engine/bdev"
	"sluice/engine/rpc"
)

// RegisterRPC registers bdev_crypt_create, bdev_crypt_delete, bdev_crypt_get_key_info and
// bdev_crypt_rekey. The bdev config section (bdev.RegisterRPC) dumps crypt bdevs with
// their Params, so this module needs no section of its own; it must be registered before
// a config is loaded, like every bdev module.
func RegisterRPC(reg *rpc.Registry, m *bdev.Manager, env Env) {
	rpc.Handle(reg, "bdev_crypt_create", func(ctx context.Context, p CreateParams) (string, error) {
		b, err := Create(ctx, m, env, p)
		if err != nil {
			return "", err
		}
		return b.Name(), nil
	})
	rpc.Handle(reg, "bdev_crypt_delete",
		func(ctx context.Context, p bdev.NameParams) (bool, error) {
			return true, m.Delete(ctx, p.Name, Module)
		})
	rpc.Handle(reg, "bdev_crypt_get_key_info",
		func(_ context.Context, p bdev.NameParams) (KeyInfo, error) {
			return GetKeyInfo(m, p.Name)
		})
	rpc.Handle(reg, "bdev_crypt_rekey", func(ctx context.Context, p RekeyParams) (bool, error) {
		return true, Rekey(ctx, m, env, p)
	})
}
