package rdmt.registry;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.List;
import javax.enterprise.context.ApplicationScoped;
import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

/**
 * The bean that apicurio-common-app-components-config-index's build step would produce: the registry
 * properties an administrator may change at run time. Its -deployment jar is not on Maven Central (see
 * pom.xml), so the list is empty: every property keeps the value it was started with.
 */
@ApplicationScoped
public class DynamicConfigProperties {

    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigProperties() {
        return new DynamicConfigPropertyList(List.of());
    }
}
