package outbox
import ("testing";"os";"time"; bolt "go.etcd.io/bbolt")
func TestMain(m *testing.M){ if v:=os.Getenv("BI"); v!="" { d,_:=time.ParseDuration(v); benchInterval=d }
 if os.Getenv("FL")=="array" { XFreelist = bolt.FreelistArrayType }
 if os.Getenv("NFS")=="1" { XNoFLSync = true }
 os.Exit(m.Run()) }
